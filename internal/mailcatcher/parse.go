package mailcatcher

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
)

func init() {
	message.CharsetReader = charset.Reader // ISO-8859-1 and friends, not only UTF-8
}

// Part is a decoded body part or attachment.
type Part struct {
	ContentType string `json:"content_type"`
	Filename    string `json:"filename,omitempty"`
	Size        int    `json:"size"`
	data        []byte
}

// Decoded is what a person reads: headers decoded, the text and HTML
// bodies with their transfer encoding (quoted-printable, base64) undone,
// attachments listed.
type Decoded struct {
	From        string    `json:"from_header"`
	ReplyTo     string    `json:"reply_to,omitempty"`
	To          []string  `json:"to_header"`
	Date        time.Time `json:"date,omitzero"`
	MessageID   string    `json:"message_id,omitempty"`
	Channel     string    `json:"channel"` // email or pec (X-Incasso-Channel)
	Stage       string    `json:"stage,omitempty"`
	Text        string    `json:"text,omitempty"`
	HTML        string    `json:"-"`
	Attachments []Part    `json:"attachments,omitempty"`
}

// decode parses a raw message with go-message.
func decode(raw []byte) (Decoded, error) {
	var d Decoded
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return d, err
	}
	h := mr.Header
	if as, err := h.AddressList("From"); err == nil && len(as) > 0 {
		d.From = display(as[0])
	} else {
		d.From, _ = h.Text("From")
	}
	if as, err := h.AddressList("Reply-To"); err == nil && len(as) > 0 {
		d.ReplyTo = as[0].Address
	}
	if as, err := h.AddressList("To"); err == nil {
		for _, a := range as {
			d.To = append(d.To, display(a))
		}
	}
	d.Date, _ = h.Date()
	d.MessageID, _ = h.MessageID()
	d.Channel = strings.ToLower(h.Get("X-Incasso-Channel"))
	if d.Channel == "" {
		d.Channel = "email"
	}
	d.Stage = h.Get("X-Incasso-Stage")
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if message.IsUnknownCharset(err) {
				continue
			}
			return d, err
		}
		body, _ := io.ReadAll(io.LimitReader(p.Body, 10<<20))
		switch ph := p.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := ph.ContentType()
			switch {
			case ct == "text/plain" && d.Text == "":
				d.Text = string(body)
			case ct == "text/html" && d.HTML == "":
				d.HTML = string(body)
			default:
				d.Attachments = append(d.Attachments, Part{ContentType: ct, Size: len(body), data: body})
			}
		case *mail.AttachmentHeader:
			ct, _, _ := ph.ContentType()
			name, _ := ph.Filename()
			if name == "" {
				_, params, _ := mime.ParseMediaType(ph.Get("Content-Type"))
				name = params["name"]
			}
			d.Attachments = append(d.Attachments, Part{ContentType: ct, Filename: name, Size: len(body), data: body})
		}
	}
	return d, nil
}

// display is an address as a person reads it (String would encode the
// name again as RFC 2047).
func display(a *mail.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return a.Name + " <" + a.Address + ">"
}
