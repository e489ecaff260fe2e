package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/incasso-io/incasso/internal/dunning"
)

// SMTPConfig is an SMTP submission server (the e-mail provider, or the
// certified-mail provider for PEC).
type SMTPConfig struct {
	Host     string
	Port     int
	Username string
	Password string
	From     string // sender address (for PEC, the company's PEC mailbox)
	TLS      string // "none", "starttls" (default), "tls"
	Timeout  time.Duration
	Domain   string // Message-ID domain
}

// Email sends reminders by e-mail (or PEC, with PEC set).
type Email struct {
	Config SMTPConfig
	// PEC sends to the client's certified address instead of the ordinary one.
	PEC bool
	// Renderer renders the letters (nil: the shipped templates).
	Renderer *Renderer
	// Archive, if set, keeps each letter as it was rendered for its
	// delivery, so the case's timeline shows what the client received.
	Archive Archive
}

// Letter is a letter as it went out.
type Letter struct {
	MessageID string    `json:"message_id"`
	Channel   string    `json:"channel"`
	To        string    `json:"to"`
	Subject   string    `json:"subject"`
	Text      string    `json:"text"`
	HTML      string    `json:"html,omitempty"`
	At        time.Time `json:"at"`
}

// Archive stores letters by message id and channel (kvstore.Letters).
type Archive interface {
	Put(ctx context.Context, l Letter) error
}

var _ dunning.Sender = (*Email)(nil)

// Send implements dunning.Sender. SMTP 5xx answers are permanent (the
// message is refused: a bounce); connection failures and 4xx are temporary.
func (e *Email) Send(ctx context.Context, m dunning.Message) error {
	to := m.Client.Email
	if e.PEC {
		to = m.Client.PEC
	}
	if to == "" {
		kind := "e-mail"
		if e.PEC {
			kind = "PEC"
		}
		return fmt.Errorf("%w: client %q has no %s address", dunning.ErrUndeliverable, m.Client.Name, kind)
	}
	if m.Creditor.Name == "" {
		// A letter that does not say who the creditor is cannot be sent.
		return fmt.Errorf("%w: no creditor name for company %d: set creditor.name in the policy (FIC did not provide one)", dunning.ErrUndeliverable, m.CompanyID)
	}
	rd := e.Renderer
	if rd == nil {
		rd = DefaultRenderer
	}
	r, err := rd.Render(m)
	if err != nil {
		return fmt.Errorf("%w: render: %v", dunning.ErrUndeliverable, err)
	}
	msg := mail.NewMsg()
	from := e.Config.From
	name := m.Creditor.FromName
	if name == "" {
		name = m.Creditor.Name
	}
	if err := msg.FromFormat(name, from); name == "" || err != nil {
		if err := msg.From(from); err != nil {
			return fmt.Errorf("%w: from %q: %v", dunning.ErrUndeliverable, from, err)
		}
	}
	if m.Creditor.ReplyTo != "" {
		if err := msg.ReplyTo(m.Creditor.ReplyTo); err != nil {
			return fmt.Errorf("%w: reply-to %q: %v", dunning.ErrUndeliverable, m.Creditor.ReplyTo, err)
		}
	}
	if err := msg.To(to); err != nil {
		return fmt.Errorf("%w: recipient %q: %v", dunning.ErrUndeliverable, to, err)
	}
	domain := e.Config.Domain
	if domain == "" {
		domain = "incasso.local"
		if _, d, ok := strings.Cut(e.Config.From, "@"); ok {
			domain = strings.Trim(d, "> ")
		}
	}
	msg.SetMessageIDWithValue(m.MessageID + "@" + domain)
	msg.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(mail.Header("X-Incasso-Stage"), m.Stage)
	msg.SetGenHeader(mail.Header("X-Incasso-Channel"), string(m.Channel))
	msg.Subject(r.Subject)
	msg.SetBodyString(mail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, r.HTML)
	for _, a := range m.Attachments {
		if err := msg.AttachReader(a.Name, bytes.NewReader(a.Data), mail.WithFileContentType(mail.ContentType(a.ContentType))); err != nil {
			return fmt.Errorf("%w: attach %s: %v", dunning.ErrUndeliverable, a.Name, err)
		}
	}

	if e.Archive != nil {
		// Kept before it goes: a letter "possibly sent" is on record too.
		ch := "email"
		if e.PEC {
			ch = "pec"
		}
		if err := e.Archive.Put(ctx, Letter{MessageID: m.MessageID, Channel: ch, To: to, Subject: r.Subject, Text: r.Text, HTML: r.HTML, At: time.Now().UTC()}); err != nil {
			return fmt.Errorf("archive the letter: %w", err) // temporary: retried, nothing sent yet
		}
	}
	opts := []mail.Option{mail.WithPort(e.Config.Port), mail.WithTimeout(max(e.Config.Timeout, 5*time.Second))}
	switch e.Config.TLS {
	case "none":
		opts = append(opts, mail.WithTLSPortPolicy(mail.NoTLS))
	case "tls":
		opts = append(opts, mail.WithSSLPort(false))
	default:
		opts = append(opts, mail.WithTLSPortPolicy(mail.TLSMandatory))
	}
	if e.Config.Port != 0 {
		opts = append(opts, mail.WithPort(e.Config.Port))
	}
	if e.Config.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(e.Config.Username), mail.WithPassword(e.Config.Password))
	}
	c, err := mail.NewClient(e.Config.Host, opts...)
	if err != nil {
		return fmt.Errorf("%w: smtp client: %v", dunning.ErrUndeliverable, err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		if msg.IsDelivered() {
			return nil // the server took it; what failed came after (RSET, QUIT)
		}
		var se *mail.SendError
		if errors.As(err, &se) && se.Reason == mail.ErrSMTPDataClose && se.ErrorCode() == 0 {
			// The whole message was written and the connection dropped
			// before the server's answer: it may have been accepted.
			return fmt.Errorf("%w: the connection to %s dropped after the message was sent, before the server confirmed it: %v", dunning.ErrPossiblySent, e.Config.Host, err)
		}
		if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
			return fmt.Errorf("%w: %v", dunning.ErrUndeliverable, err)
		}
		return fmt.Errorf("smtp %s: %w", e.Config.Host, err)
	}
	return nil
}
