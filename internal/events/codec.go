package events

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

// ErrInvalid is wrapped by decoding errors: the message is not a valid
// binary-mode CloudEvent.
var ErrInvalid = errors.New("events: invalid cloudevent message")

const hdrPrefix = "ce-"

// percentEncode escapes space, '"', '%' and bytes outside 0x21–0x7E.
func percentEncode(s string) string {
	need := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7F || c == '"' || c == '%' {
			need = true
			break
		}
	}
	if !need {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7F || c == '"' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentDecode reverses percentEncode; the result must be valid UTF-8.
func percentDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		if !utf8.ValidString(s) {
			return "", errors.New("not UTF-8")
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape at %d", i)
		}
		h, ok1 := unhex(s[i+1])
		l, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad escape %q", s[i:i+3])
		}
		b = append(b, h<<4|l)
		i += 2
	}
	if !utf8.Valid(b) {
		return "", errors.New("not UTF-8 after decoding")
	}
	return string(b), nil
}

// Encode puts a validated CloudEvent on a NATS message for subject, in
// binary mode, with Nats-Msg-Id = the event id.
func Encode(subject string, e event.Event) (*nats.Msg, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("events: encode %s: %w", e.Type(), err)
	}
	h := make(nats.Header, 11+len(e.Extensions())) // the ce-* attributes, Content-Type, Nats-Msg-Id
	set := func(k, v string) {
		if v != "" {
			h[hdrPrefix+k] = []string{percentEncode(v)}
		}
	}
	set("specversion", e.SpecVersion())
	set("id", e.ID())
	set("source", e.Source())
	set("type", e.Type())
	set("subject", e.Subject())
	if !e.Time().IsZero() {
		set("time", e.Time().UTC().Format(time.RFC3339Nano))
	}
	set("datacontenttype", e.DataContentType())
	set("dataschema", e.DataSchema())
	for k, v := range e.Extensions() {
		set(k, fmt.Sprint(v))
	}
	if ct := e.DataContentType(); ct != "" {
		h["Content-Type"] = []string{ct}
	}
	h[nats.MsgIdHdr] = []string{e.ID()}
	return &nats.Msg{Subject: subject, Header: h, Data: e.Data()}, nil
}

// Decode reads a binary-mode CloudEvent from a NATS message and validates it.
func Decode(m *nats.Msg) (event.Event, error) {
	e := event.New()
	get := func(k string) (string, error) {
		v := m.Header.Get(hdrPrefix + k)
		if v == "" {
			// Header names are case-sensitive in NATS; accept Ce-/CE- too.
			for name, vs := range m.Header {
				if strings.EqualFold(name, hdrPrefix+k) && len(vs) > 0 {
					v = vs[0]
				}
			}
		}
		if v == "" {
			return "", nil
		}
		d, err := percentDecode(v)
		if err != nil {
			return "", fmt.Errorf("%w: header %s%s: %v", ErrInvalid, hdrPrefix, k, err)
		}
		return d, nil
	}
	sv, err := get("specversion")
	if err != nil {
		return e, err
	}
	if sv != event.CloudEventsVersionV1 {
		return e, fmt.Errorf("%w: ce-specversion %q", ErrInvalid, sv)
	}
	for name, vs := range m.Header {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, hdrPrefix) || len(vs) == 0 {
			continue
		}
		attr := lower[len(hdrPrefix):]
		v, err := get(attr)
		if err != nil {
			return e, err
		}
		switch attr {
		case "specversion":
		case "id":
			e.SetID(v)
		case "source":
			e.SetSource(v)
		case "type":
			e.SetType(v)
		case "subject":
			e.SetSubject(v)
		case "time":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return e, fmt.Errorf("%w: ce-time %q", ErrInvalid, v)
			}
			e.SetTime(t)
		case "datacontenttype":
			e.SetDataContentType(v)
		case "dataschema":
			e.SetDataSchema(v)
		default:
			e.SetExtension(attr, v) // an invalid name surfaces in Validate

		}
	}
	if len(m.Data) > 0 {
		e.DataEncoded = m.Data
	}
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return e, nil
}
