package ficsim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/incasso-io/incasso/internal/receivables"
)

var rome = receivables.Rome

type authCode struct {
	redirect  string
	scopes    map[string]bool
	challenge string
	expires   time.Time
}

type accessToken struct {
	scopes  map[string]bool
	expires time.Time
	refresh string
}

type refreshToken struct {
	scopes map[string]bool
	access string
}

type oauthState struct {
	codes   map[string]authCode
	access  map[string]accessToken
	refresh map[string]refreshToken
}

func newOAuthState() *oauthState {
	return &oauthState{codes: map[string]authCode{}, access: map[string]accessToken{}, refresh: map[string]refreshToken{}}
}

func randToken(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// validScopes are the scopes FIC declares.
var validScopes = func() map[string]bool {
	m := map[string]bool{}
	fams := []string{"entity.clients", "entity.suppliers", "products", "issued_documents.invoices", "issued_documents.credit_notes",
		"issued_documents.receipts", "issued_documents.orders", "issued_documents.quotes", "issued_documents.proformas",
		"issued_documents.delivery_notes", "issued_documents.work_reports", "issued_documents.supplier_orders",
		"issued_documents.self_invoices", "received_documents", "stock", "receipts", "calendar", "taxes", "archive",
		"cashbook", "settings"}
	for _, f := range fams {
		m[f+":r"], m[f+":a"] = true, true
	}
	m["emails:r"], m["situation:r"] = true, true
	return m
}()

// handleAuthorize auto-approves: it redirects to redirect_uri with a
// single-use code (60 s) and the caller's state.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" {
		oauthError(w, http.StatusBadRequest, "unsupported_response_type", "response_type must be code")
		return
	}
	if q.Get("client_id") != s.cfg.ClientID {
		oauthError(w, http.StatusBadRequest, "invalid_client", "unknown client_id")
		return
	}
	redirect := q.Get("redirect_uri")
	u, err := url.Parse(redirect)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(len(s.cfg.RedirectURLs) > 0 && !slices.Contains(s.cfg.RedirectURLs, redirect)) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri does not match the app's")
		return
	}
	scopes := map[string]bool{}
	for _, sc := range strings.Fields(q.Get("scope")) {
		if !validScopes[sc] {
			oauthError(w, http.StatusBadRequest, "invalid_scope", "unknown scope "+sc)
			return
		}
		scopes[sc] = true
	}
	if len(scopes) == 0 {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "scope is required")
		return
	}
	challenge := q.Get("code_challenge")
	if challenge != "" && q.Get("code_challenge_method") != "S256" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "code_challenge_method must be S256")
		return
	}
	code := randToken("c/")
	s.mu.Lock()
	s.oauth.codes[code] = authCode{redirect: redirect, scopes: scopes, challenge: challenge, expires: s.nowLocked().Add(60 * time.Second)}
	s.mu.Unlock()
	rq := u.Query()
	rq.Set("code", code)
	if st := q.Get("state"); st != "" {
		rq.Set("state", st)
	}
	u.RawQuery = rq.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// handleToken accepts JSON (as FIC's SDKs send) or form bodies.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	p := map[string]string{}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	switch mt {
	case "application/json":
		var raw map[string]any
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "body is not valid JSON")
			return
		}
		for k, v := range raw {
			if sv, ok := v.(string); ok {
				p[k] = sv
			}
		}
	default:
		if err := r.ParseForm(); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "cannot parse body")
			return
		}
		for k := range r.PostForm {
			p[k] = r.PostForm.Get(k)
		}
	}
	if p["client_id"] != s.cfg.ClientID || p["client_secret"] != s.cfg.ClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	var scopes map[string]bool
	switch p["grant_type"] {
	case "authorization_code":
		if p["code"] == "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "The code field is required when grant type is authorization_code.")
			return
		}
		c, ok := s.oauth.codes[p["code"]]
		delete(s.oauth.codes, p["code"]) // single use
		if !ok || now.After(c.expires) {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "The authorization code is invalid or expired.")
			return
		}
		if p["redirect_uri"] != c.redirect {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match")
			return
		}
		if c.challenge != "" {
			sum := sha256.Sum256([]byte(p["code_verifier"]))
			if base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
				oauthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
				return
			}
		}
		scopes = c.scopes
	case "refresh_token":
		rt, ok := s.oauth.refresh[p["refresh_token"]]
		if !ok {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "The refresh token is invalid.")
			return
		}
		// Rotation: the old refresh token and its access token die now.
		delete(s.oauth.refresh, p["refresh_token"])
		delete(s.oauth.access, rt.access)
		scopes = rt.scopes
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
		return
	}
	at, rt := randToken("a/"), randToken("r/")
	s.oauth.access[at] = accessToken{scopes: scopes, expires: now.Add(s.cfg.AccessTTL), refresh: rt}
	s.oauth.refresh[rt] = refreshToken{scopes: scopes, access: at}
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "bearer", "access_token": at, "refresh_token": rt,
		"expires_in": int(s.cfg.AccessTTL / time.Second),
	})
}

// RevokeToken invalidates an access or refresh token (and its pair), as a
// user revoking the app in FIC would.
func (s *Server) RevokeToken(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.oauth.access[tok]; ok {
		delete(s.oauth.access, tok)
		delete(s.oauth.refresh, at.refresh)
		return true
	}
	if rt, ok := s.oauth.refresh[tok]; ok {
		delete(s.oauth.refresh, tok)
		delete(s.oauth.access, rt.access)
		return true
	}
	return false
}
