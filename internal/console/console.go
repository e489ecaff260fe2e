// Package console is the ops console in the browser: what the people who
// chase unpaid invoices use every day. It is served by the dunning service
// on the ops listener under /console/, rendered on the server (html/template
// and SVG charts, no JavaScript build), and acts only through the dunning
// engine, so every action is audited with the signed-in operator.
//
//   - Sign-in with an operator's personal token (or the shared ops token),
//     a session in JetStream KV (expires; ends when the operator is
//     revoked), a per-session CSRF token on every form, same-origin checks.
//   - Roles: viewers look, operators act, admins also write off.
//   - Pages: the work queue (what needs a person today), cases with
//     filters, sort, totals, bulk actions and CSV, a case, a client,
//     reports (aging, DSO over time, what goes out in the next days).
//   - Italian by default, English with ?lang=en.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/notify"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

//go:embed templates/*.html
var templateFS embed.FS

// Console serves the pages. Create it with its dependencies and mount
// Handler under /console/.
type Console struct {
	Engine    *dunning.Engine
	Sessions  *kvstore.Sessions
	Operators *kvstore.Operators // nil: shared token only
	// SharedToken is DUNNING_OPS_TOKEN ("" : none): it signs in as admin,
	// recorded as "ops-token (as NAME)" with the name given at sign-in.
	SharedToken string
	Letters     *notify.Renderer
	// Archive has the letters as they were sent (nil: none kept).
	Archive interface {
		Get(ctx context.Context, messageID, channel string) (notify.Letter, bool, error)
	}
	Now func() time.Time
	Log *slog.Logger

	once    sync.Once
	tpl     map[string]*template.Template
	limiter *rate.Limiter // sign-in attempts
}

const (
	cookieSession = "incasso_console"
	cookieLang    = "incasso_lang"
	prefix        = "/console"
)

func (c *Console) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Console) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Console) init() {
	c.once.Do(func() {
		c.limiter = rate.NewLimiter(rate.Every(200*time.Millisecond), 10)
		c.tpl = map[string]*template.Template{}
		for _, page := range []string{"login", "queue", "cases", "case", "client", "letter", "reports", "error"} {
			c.tpl[page] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html"))
		}
	})
}

// Handler serves /console/...
func (c *Console) Handler() http.Handler {
	c.init()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console/login", c.loginPage)
	mux.HandleFunc("POST /console/login", c.login)
	mux.Handle("POST /console/logout", c.auth(kvstore.RoleViewer, c.logout))
	mux.Handle("GET /console/{$}", c.auth(kvstore.RoleViewer, c.queue))
	mux.Handle("GET /console/cases", c.auth(kvstore.RoleViewer, c.cases))
	mux.Handle("GET /console/cases.csv", c.auth(kvstore.RoleViewer, c.casesCSV))
	mux.Handle("POST /console/cases/bulk", c.auth(kvstore.RoleOperator, c.bulk))
	mux.Handle("GET /console/cases/{cid}/{id}", c.auth(kvstore.RoleViewer, c.casePage))
	mux.Handle("GET /console/cases/{cid}/{id}/letter", c.auth(kvstore.RoleViewer, c.letter))
	mux.Handle("GET /console/cases/{cid}/{id}/letter.html", c.auth(kvstore.RoleViewer, c.letterHTML))
	mux.Handle("POST /console/cases/{cid}/{id}/act", c.auth(kvstore.RoleOperator, c.act))
	mux.Handle("GET /console/cases/{cid}/{id}/sent/{msg}/{ch}", c.auth(kvstore.RoleViewer, c.sent))
	mux.Handle("GET /console/clients/{cid}/{client}", c.auth(kvstore.RoleViewer, c.clientPage))
	mux.Handle("POST /console/clients/{cid}/{client}/pause", c.auth(kvstore.RoleOperator, c.pauseClient))
	mux.Handle("GET /console/reports", c.auth(kvstore.RoleViewer, c.reports))
	mux.HandleFunc("GET /console/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write([]byte(stylesheet))
	})
	return c.secure(mux)
}

// secure sets the headers every page carries: no framing, no sniffing, a
// CSP that allows only this origin's styles and images (no scripts at all:
// the console needs none), no referrer to other sites.
func (c *Console) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'")
		h.Set("X-Frame-Options", "SAMEORIGIN")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if lang := r.URL.Query().Get("lang"); lang == "it" || lang == "en" {
			http.SetCookie(w, &http.Cookie{Name: cookieLang, Value: lang, Path: prefix, MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode, Secure: secureReq(r), HttpOnly: true})
		}
		next.ServeHTTP(w, r)
	})
}

// principal is the signed-in user.
type principal struct {
	Name, Role string
	Shared     bool
	CSRF       string
	session    string
}

type ctxKey struct{}

func who(r *http.Request) principal {
	p, _ := r.Context().Value(ctxKey{}).(principal)
	return p
}

// actor is the name the audit trail records.
func (p principal) actor() string {
	if p.Shared {
		return "ops-token (as " + p.Name + ")"
	}
	return p.Name
}

// auth requires a live session whose role reaches role; POSTs need the
// session's CSRF token and a same-origin request.
func (c *Console) auth(role string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(cookieSession)
		if err != nil {
			c.toLogin(w, r)
			return
		}
		s, err := c.Sessions.Get(r.Context(), ck.Value)
		if errors.Is(err, kvstore.ErrBadToken) {
			c.toLogin(w, r)
			return
		}
		if err != nil {
			c.fail(w, r, http.StatusServiceUnavailable, err)
			return
		}
		if !s.Shared {
			op, err := c.Operators.Active(r.Context(), s.OperatorID)
			if err != nil {
				_ = c.Sessions.Delete(r.Context(), ck.Value)
				c.toLogin(w, r)
				return
			}
			s.Role = op.Role // a changed role applies at once
		}
		p := principal{Name: s.Name, Role: s.Role, Shared: s.Shared, CSRF: s.CSRF, session: ck.Value}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) {
				c.fail(w, r, http.StatusForbidden, errors.New("cross-site request refused"))
				return
			}
			if err := r.ParseForm(); err != nil {
				c.fail(w, r, http.StatusBadRequest, err)
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.CSRF)) != 1 {
				c.fail(w, r, http.StatusForbidden, errors.New("the form expired: reload the page and try again"))
				return
			}
		}
		if kvstore.Rank(p.Role) < kvstore.Rank(role) {
			c.fail(w, r, http.StatusForbidden, fmt.Errorf("%s is %s; this needs %s", p.Name, p.Role, role))
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	})
}

// sameOrigin: a browser says where a POST comes from (Sec-Fetch-Site or
// Origin); a form of another site is refused even with a stolen CSRF token.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin"
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return true // not a browser: the CSRF token decides
}

func (c *Console) toLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		c.fail(w, r, http.StatusUnauthorized, errors.New("signed out: sign in again"))
		return
	}
	http.Redirect(w, r, prefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "login", map[string]any{"Next": safeNext(r.URL.Query().Get("next")), "Shared": c.SharedToken != ""})
}

// login checks a token and opens a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !c.limiter.Allow() {
		c.fail(w, r, http.StatusTooManyRequests, errors.New("too many sign-in attempts: wait a moment"))
		return
	}
	if !sameOrigin(r) {
		c.fail(w, r, http.StatusForbidden, errors.New("cross-site request refused"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	name := clean(r.PostForm.Get("name"), 64)
	next := safeNext(r.PostForm.Get("next"))
	csrf := make([]byte, 32)
	_, _ = rand.Read(csrf)
	s := kvstore.Session{CSRF: hex.EncodeToString(csrf), Created: c.now().UTC()}
	switch {
	case c.SharedToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(c.SharedToken)) == 1:
		if name == "" {
			c.render(w, r, "login", map[string]any{"Next": next, "Shared": true, "Error": "name"})
			return
		}
		s.Name, s.Role, s.Shared = name, kvstore.RoleAdmin, true
	case c.Operators != nil && strings.HasPrefix(tok, kvstore.TokenPrefix):
		op, err := c.Operators.Authenticate(r.Context(), tok)
		if err != nil {
			c.log().Warn("console sign-in refused", "remote", r.RemoteAddr)
			c.render(w, r, "login", map[string]any{"Next": next, "Shared": c.SharedToken != "", "Error": "token"})
			return
		}
		s.OperatorID, s.Name, s.Role = op.ID, op.Name, op.Role
	default:
		c.log().Warn("console sign-in refused", "remote", r.RemoteAddr)
		c.render(w, r, "login", map[string]any{"Next": next, "Shared": c.SharedToken != "", "Error": "token"})
		return
	}
	id, err := c.Sessions.Create(r.Context(), s)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	c.log().Info("console sign-in", "operator", s.Name, "role", s.Role, "shared_token", s.Shared)
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: id, Path: prefix, HttpOnly: true, Secure: secureReq(r), SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	_ = c.Sessions.Delete(r.Context(), who(r).session)
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: "", Path: prefix, MaxAge: -1, HttpOnly: true, Secure: secureReq(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, prefix+"/login", http.StatusSeeOther)
}

// safeNext keeps redirects inside the console.
func safeNext(n string) string {
	if !strings.HasPrefix(n, prefix+"/") || strings.HasPrefix(n, "//") || strings.ContainsAny(n, "\\\r\n") {
		return prefix + "/"
	}
	return n
}

func (c *Console) lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "it" || l == "en" {
		return l
	}
	if ck, err := r.Cookie(cookieLang); err == nil && (ck.Value == "it" || ck.Value == "en") {
		return ck.Value
	}
	return "it"
}

// render executes a page inside the layout.
func (c *Console) render(w http.ResponseWriter, r *http.Request, page string, data map[string]any) {
	c.renderStatus(w, r, http.StatusOK, page, data)
}

func (c *Console) renderStatus(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	c.init()
	if data == nil {
		data = map[string]any{}
	}
	p := who(r)
	data["Me"] = p
	data["Lang"] = c.lang(r)
	data["Path"] = r.URL.Path
	data["Today"] = rcv.DateIn(c.now(), rcv.Rome)
	data["CanAct"] = kvstore.Rank(p.Role) >= kvstore.Rank(kvstore.RoleOperator)
	data["IsAdmin"] = kvstore.Rank(p.Role) >= kvstore.Rank(kvstore.RoleAdmin)
	if f := r.URL.Query().Get("done"); f != "" {
		data["Flash"] = clean(f, 200)
	}
	// Rendered whole first: a template error is a 500 with a log line, a
	// client gone mid-write is nobody's error.
	var buf bytes.Buffer
	if err := c.tpl[page].Execute(&buf, data); err != nil {
		c.log().Error("console page", "page", page, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status >= 500 {
		c.log().Error("console", "path", r.URL.Path, "error", err)
	}
	c.renderStatus(w, r, status, "error", map[string]any{"Status": status, "Error": err.Error()})
}

// clean makes free text safe to store: control characters dropped, spaces
// collapsed, at most max runes.
func clean(s string, max int) string {
	var b strings.Builder
	n, space := 0, false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			r = ' '
		}
		if r == ' ' {
			if space || b.Len() == 0 {
				continue
			}
			space = true
		} else {
			space = false
		}
		if n == max {
			break
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}

// secureReq: cookies are Secure when the console is reached over https,
// directly or through a proxy that says so.
func secureReq(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
