// Package delivery delivers Incasso's event stream over HTTP to the
// endpoints platforms register, signed per the Standard Webhooks spec,
// with the guarantees of the NATS stream: every event of an endpoint's
// filter is delivered (2xx) or, after about a day of retries, recorded as
// given up and replayable; one document's events arrive in order; nothing
// is lost across a restart or a crash, because each endpoint reads from its
// own durable JetStream consumer and acknowledges an event only once the
// endpoint accepted it.
//
//   - Endpoint (this file): where to send, what, how it is signed.
//   - Sender (send.go): one HTTP request, CloudEvents HTTP binding
//     (structured JSON by default, binary optional), Standard Webhooks
//     headers (webhook-id = the event id).
//   - Manager (manager.go): a worker per enabled endpoint, lanes per
//     document, the retry schedule, disabling, replay and test events.
package delivery

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors the API maps to statuses.
var (
	ErrNotFound = errors.New("delivery: no such endpoint")
	ErrInvalid  = errors.New("delivery: invalid endpoint")
)

// Content modes of the CloudEvents HTTP binding.
const (
	Structured = "structured" // application/cloudevents+json (default)
	Binary     = "binary"     // ce-* headers, the data as the body
)

// SecretPrefix starts every signing secret (Standard Webhooks).
const SecretPrefix = "whsec_"

// Secret is a signing secret. Expires is zero for the current one; a
// rotated-out secret keeps signing until it expires, so receivers can
// switch without losing a delivery.
type Secret struct {
	Key     string    `json:"key"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

// Endpoint is a platform's registration.
type Endpoint struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Description string   `json:"description,omitempty"`
	Companies   []int64  `json:"companies,omitempty"` // empty: every company
	Types       []string `json:"types,omitempty"`     // exact types or "prefix.*"; empty: every type
	Mode        string   `json:"mode"`
	Secrets     []Secret `json:"secrets"`
	Disabled    bool     `json:"disabled,omitempty"`
	// DisabledReason says why: by an operator, 410 Gone, failing for days.
	DisabledReason string    `json:"disabled_reason,omitempty"`
	FailingSince   time.Time `json:"failing_since,omitzero"`
	CreatedAt      time.Time `json:"created_at"`
	CreatedBy      string    `json:"created_by,omitempty"`
}

// NewSecret returns a fresh whsec_ secret (24 random bytes).
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// NewID returns an endpoint id (ep_ + 16 hex).
func NewID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("ep_%x", b)
}

// SigningKeys are the secrets that sign at now: the current one and those
// rotated out less than their grace period ago.
func (e Endpoint) SigningKeys(now time.Time) []string {
	var out []string
	for _, s := range e.Secrets {
		if s.Expires.IsZero() || now.Before(s.Expires) {
			out = append(out, s.Key)
		}
	}
	return out
}

// Rotate makes a new current secret; the old current one keeps signing for
// grace. It returns the new secret.
func (e *Endpoint) Rotate(now time.Time, grace time.Duration) string {
	s := NewSecret()
	kept := []Secret{{Key: s, Created: now}}
	for _, old := range e.Secrets {
		if old.Expires.IsZero() {
			old.Expires = now.Add(grace)
		}
		if now.Before(old.Expires) {
			kept = append(kept, old)
		}
	}
	e.Secrets = kept
	return s
}

// Matches reports whether an event of type typ of company cid is for the
// endpoint.
func (e Endpoint) Matches(cid int64, typ string) bool {
	if len(e.Companies) > 0 && !slices.Contains(e.Companies, cid) {
		return false
	}
	if len(e.Types) == 0 {
		return true
	}
	for _, t := range e.Types {
		if t == "*" || t == typ {
			return true
		}
		if p, ok := strings.CutSuffix(t, ".*"); ok && strings.HasPrefix(typ, p+".") {
			return true
		}
	}
	return false
}

// Subjects are the stream subjects the endpoint's consumer reads.
func (e Endpoint) Subjects(prefix string) []string {
	if len(e.Companies) == 0 {
		return []string{prefix + ".>"}
	}
	out := make([]string, 0, len(e.Companies))
	for _, c := range e.Companies {
		out = append(out, prefix+"."+strconv.FormatInt(c, 10)+".>")
	}
	return out
}

// Validate checks what a client asked for; check vets the URL against the
// outbound guard (https, public address) and may be nil.
func (e *Endpoint) Validate(check func(*url.URL) error) error {
	u, err := url.Parse(e.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%w: url must be an absolute https URL", ErrInvalid)
	}
	if u.User != nil {
		return fmt.Errorf("%w: url must not carry credentials", ErrInvalid)
	}
	if check != nil {
		if err := check(u); err != nil {
			return fmt.Errorf("%w: url %s: %v", ErrInvalid, u.Redacted(), err)
		}
	}
	switch e.Mode {
	case "":
		e.Mode = Structured
	case Structured, Binary:
	default:
		return fmt.Errorf("%w: mode must be %s or %s", ErrInvalid, Structured, Binary)
	}
	for _, t := range e.Types {
		if t == "" || strings.ContainsAny(t, " >") || (strings.Contains(t, "*") && t != "*" && !strings.HasSuffix(t, ".*")) || strings.Count(t, "*") > 1 {
			return fmt.Errorf("%w: type %q: want an event type (invoice.paid), a family (dunning.*) or *", ErrInvalid, t)
		}
	}
	for _, c := range e.Companies {
		if c <= 0 {
			return fmt.Errorf("%w: company ids are positive", ErrInvalid)
		}
	}
	if len(e.Description) > 200 {
		return fmt.Errorf("%w: description longer than 200 characters", ErrInvalid)
	}
	return nil
}
