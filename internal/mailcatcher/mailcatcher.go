// Package mailcatcher is a local SMTP server that keeps every message it
// receives and shows them on a small web page: the demo's and the compose
// file's stand-in for a real mail provider. It is the real SMTP protocol
// (emersion/go-smtp), so what Incasso sends here is what a provider gets;
// the page shows it as a mail client would (emersion/go-message decodes
// the MIME: headers, quoted-printable and base64 bodies, attachments), in
// Europe/Rome time, with the channel (e-mail or PEC) of each message.
package mailcatcher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // Europe/Rome in FROM scratch images

	"github.com/emersion/go-smtp"
)

// Message is one received e-mail.
type Message struct {
	ID       int       `json:"id"`
	From     string    `json:"from"` // the envelope's
	To       []string  `json:"to"`
	Subject  string    `json:"subject"`
	Received time.Time `json:"received"`
	Raw      string    `json:"-"`
	Decoded
	DecodeError string `json:"decode_error,omitempty"`
}

// Catcher receives and lists messages. Safe for concurrent use.
type Catcher struct {
	mu   sync.Mutex
	msgs []Message
	// OnMessage, if set, is called for every message received.
	OnMessage func(Message)
	smtp      *smtp.Server
}

// Messages returns what was received, oldest first.
func (c *Catcher) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// ServeSMTP accepts mail on ln until Close.
func (c *Catcher) ServeSMTP(ln net.Listener) error {
	s := smtp.NewServer(backend{c})
	s.Domain = "mailcatcher.local"
	s.AllowInsecureAuth = true
	s.MaxMessageBytes = 10 << 20
	s.ReadTimeout, s.WriteTimeout = time.Minute, time.Minute
	c.mu.Lock()
	c.smtp = s
	c.mu.Unlock()
	return s.Serve(ln)
}

// Close stops the SMTP server.
func (c *Catcher) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.smtp != nil {
		return c.smtp.Close()
	}
	return nil
}

type backend struct{ c *Catcher }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{c: b.c}, nil }

type session struct {
	c    *Catcher
	from string
	to   []string
}

func (s *session) AuthPlain(string, string) error { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: s.from, To: s.to, Received: time.Now(), Raw: string(raw)}
	if pm, err := mail.ReadMessage(strings.NewReader(m.Raw)); err == nil {
		dec := new(mime.WordDecoder)
		if subj, err := dec.DecodeHeader(pm.Header.Get("Subject")); err == nil {
			m.Subject = subj
		}
	}
	if d, err := decode(raw); err == nil {
		m.Decoded = d
	} else {
		m.DecodeError = err.Error()
	}
	s.c.mu.Lock()
	m.ID = len(s.c.msgs) + 1
	s.c.msgs = append(s.c.msgs, m)
	if len(s.c.msgs) > 5000 {
		s.c.msgs = s.c.msgs[1000:]
	}
	cb := s.c.OnMessage
	s.c.mu.Unlock()
	if cb != nil {
		cb(m)
	}
	return nil
}
func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// rome is Europe/Rome; time/tzdata (imported below) makes it load in a
// FROM scratch image, which has no zoneinfo.
var rome = func() *time.Location {
	l, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		return time.UTC
	}
	return l
}()

var funcs = template.FuncMap{
	"rome": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(rome).Format("02/01/2006 15:04:05")
	},
	"channel": func(c string) string {
		if c == "pec" {
			return "PEC"
		}
		return "E-mail"
	},
	"kb": func(n int) string { return strconv.FormatFloat(float64(n)/1024, 'f', 1, 64) + " KB" },
}

const style = `<style>body{font-family:system-ui,sans-serif;margin:2em;color:#1f2933}table{border-collapse:collapse}
td,th{padding:4px 10px;text-align:left;border-bottom:1px solid #e4e7eb;vertical-align:top}th{background:#f5f7fa}
.pec{background:#fde8e8;color:#9b1c1c;padding:1px 6px;border-radius:4px;font-weight:600}.email{background:#e1effe;color:#1e429f;padding:1px 6px;border-radius:4px}
pre{white-space:pre-wrap;background:#f5f7fa;padding:1em;border-radius:6px;max-width:60em}iframe{width:100%;max-width:60em;height:40em;border:1px solid #e4e7eb}</style>`

var page = template.Must(template.New("p").Funcs(funcs).Parse(`<!doctype html><html lang="it"><head><meta charset="utf-8"><title>Incasso mail catcher</title>
<meta http-equiv="refresh" content="10">` + style + `</head>
<body><h1>Incasso mail catcher</h1><p>{{len .}} messages (the page refreshes every 10 s). Nothing here leaves this machine. Times are Europe/Rome.</p>
<table><tr><th>#</th><th>Received</th><th>Channel</th><th>From</th><th>To</th><th>Subject</th><th>Attachments</th></tr>
{{range .}}<tr><td><a href="/messages/{{.ID}}">{{.ID}}</a></td><td>{{rome .Received}}</td><td><span class="{{.Channel}}">{{channel .Channel}}</span></td><td>{{.Decoded.From}}</td>
<td>{{range .Decoded.To}}{{.}}<br>{{else}}{{range .To}}{{.}}<br>{{end}}{{end}}</td><td><a href="/messages/{{.ID}}">{{.Subject}}</a></td><td>{{len .Attachments}}</td></tr>{{end}}
</table></body></html>`))

var one = template.Must(template.New("m").Funcs(funcs).Parse(`<!doctype html><html lang="it"><head><meta charset="utf-8"><title>{{.Subject}}</title>` + style + `</head>
<body><p><a href="/">← all messages</a></p><h1>{{.Subject}}</h1>
<table>
<tr><th>Channel</th><td><span class="{{.Channel}}">{{channel .Channel}}</span>{{if .Stage}} · stage {{.Stage}}{{end}}</td></tr>
<tr><th>From</th><td>{{.Decoded.From}} (envelope {{.From}})</td></tr>
{{if .ReplyTo}}<tr><th>Reply-To</th><td>{{.ReplyTo}}</td></tr>{{end}}
<tr><th>To</th><td>{{range .Decoded.To}}{{.}}<br>{{end}}</td></tr>
<tr><th>Date</th><td>{{rome .Date}} (received {{rome .Received}})</td></tr>
<tr><th>Message-ID</th><td>{{.MessageID}}</td></tr>
{{range $i, $a := .Attachments}}<tr><th>Attachment</th><td><a href="/messages/{{$.ID}}/attachments/{{$i}}">{{if $a.Filename}}{{$a.Filename}}{{else}}part {{$i}}{{end}}</a> ({{$a.ContentType}}, {{kb $a.Size}})</td></tr>{{end}}
</table>
{{if .DecodeError}}<p>Could not decode the MIME: {{.DecodeError}}</p>{{end}}
{{if .HTML}}<h2>HTML</h2><iframe title="HTML part" sandbox src="/messages/{{.ID}}/html"></iframe>{{end}}
{{if .Text}}<h2>Text</h2><pre>{{.Text}}</pre>{{end}}
<p><a href="/messages/{{.ID}}/raw">Raw message (MIME source)</a></p>
</body></html>`))

// Handler serves the list (/), one message decoded (/messages/{id}), its
// HTML part, attachments and raw source, and JSON (/api/messages).
func (c *Catcher) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		msgs := c.Messages()
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, msgs)
	})
	find := func(w http.ResponseWriter, r *http.Request) (Message, bool) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		for _, m := range c.Messages() {
			if m.ID == id {
				return m, true
			}
		}
		http.NotFound(w, r)
		return Message{}, false
	}
	mux.HandleFunc("GET /messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := find(w, r); ok {
			var buf bytes.Buffer
			if err := one.Execute(&buf, m); err != nil {
				http.Error(w, "message page: "+err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(buf.Bytes())
		}
	})
	mux.HandleFunc("GET /messages/{id}/html", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := find(w, r); ok {
			// The letter's own HTML, in a sandboxed frame: no scripts, no
			// requests anywhere.
			w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, m.HTML)
		}
	})
	mux.HandleFunc("GET /messages/{id}/raw", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := find(w, r); ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, m.Raw)
		}
	})
	mux.HandleFunc("GET /messages/{id}/attachments/{n}", func(w http.ResponseWriter, r *http.Request) {
		m, ok := find(w, r)
		if !ok {
			return
		}
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n >= len(m.Attachments) {
			http.NotFound(w, r)
			return
		}
		a := m.Attachments[n]
		w.Header().Set("Content-Type", a.ContentType)
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename}))
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(a.data)
	})
	mux.HandleFunc("GET /api/messages", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.Messages())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}
