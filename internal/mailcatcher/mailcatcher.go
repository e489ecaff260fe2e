// Package mailcatcher is a local SMTP server that keeps every message it
// receives and shows them on a small web page: the demo's and the compose
// file's stand-in for a real mail provider. It is the real SMTP protocol
// (emersion/go-smtp), so what Incasso sends here is what a provider gets.
package mailcatcher

import (
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

	"github.com/emersion/go-smtp"
)

// Message is one received e-mail.
type Message struct {
	ID       int       `json:"id"`
	From     string    `json:"from"`
	To       []string  `json:"to"`
	Subject  string    `json:"subject"`
	Received time.Time `json:"received"`
	Raw      string    `json:"-"`
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

var page = template.Must(template.New("p").Parse(`<!doctype html><html><head><meta charset="utf-8"><title>Incasso mail catcher</title>
<meta http-equiv="refresh" content="5"><style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left}</style></head>
<body><h1>Incasso mail catcher</h1><p>{{len .}} messages (refreshes every 5 s). Nothing here leaves this machine.</p>
<table><tr><th>#</th><th>Received</th><th>To</th><th>Subject</th></tr>
{{range .}}<tr><td><a href="/messages/{{.ID}}">{{.ID}}</a></td><td>{{.Received.Format "15:04:05"}}</td><td>{{range .To}}{{.}} {{end}}</td><td><a href="/messages/{{.ID}}">{{.Subject}}</a></td></tr>{{end}}
</table></body></html>`))

// Handler serves the list (/), one raw message (/messages/{id}) and JSON
// (/api/messages).
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
	mux.HandleFunc("GET /messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		for _, m := range c.Messages() {
			if m.ID == id {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				fmt.Fprint(w, m.Raw)
				return
			}
		}
		http.NotFound(w, r)
	})
	mux.HandleFunc("GET /api/messages", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.Messages())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}
