package fic

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/golang-jwt/jwt/v5"
)

// Webhook errors.
var (
	// ErrWebhookAuth: the Authorization JWT is missing, malformed, badly
	// signed, expired, or has the wrong issuer or audience.
	ErrWebhookAuth = errors.New("fic: webhook not authenticated")
	// ErrWebhookReplayed: the JWT's jti was already accepted.
	ErrWebhookReplayed = errors.New("fic: webhook replayed")
	// ErrWebhookPayload: the request is not a FIC CloudEvent.
	ErrWebhookPayload = errors.New("fic: webhook payload invalid")
)

// DefaultWebhookKey is FIC's published webhook public key (base64 of a PEM),
// as copied in the project's FIC notes. It must be re-checked against
// developers.fattureincloud.it/docs/webhooks/notifications; override it with
// configuration.
const DefaultWebhookKey = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KTUZrd0V3WUhLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFL1JvSElqZ1k3aGZYZlk1cC9KeStLL0ZndU1aNAozVHZaOXQ0ZU43K2t4UTBNSnpLdG93djRDY1lURnFyQm03aE1CNVpXS25xTHoyNEQ2bFFqU0wwWXN3PT0KLS0tLS1FTkQgUFVCTElDIEtFWS0tLS0tCg=="

// ChallengeHeader carries the verification challenge (or query parameter of
// the same name in "query" mode).
const ChallengeHeader = "x-fic-verification-challenge"

// ParsePublicKey reads an ECDSA P-256 public key given as PEM or as base64 of
// a PEM (FIC publishes the latter).
func ParsePublicKey(s string) (*ecdsa.PublicKey, error) {
	b := []byte(strings.TrimSpace(s))
	if !strings.HasPrefix(string(b), "-----BEGIN") {
		dec, err := base64.StdEncoding.DecodeString(string(b))
		if err != nil {
			return nil, fmt.Errorf("fic: webhook key: neither PEM nor base64 PEM: %w", err)
		}
		b = dec
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("fic: webhook key: no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("fic: webhook key: %w", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || ek.Curve.Params().Name != "P-256" {
		return nil, errors.New("fic: webhook key: want an ECDSA P-256 key")
	}
	return ek, nil
}

// Challenge returns the verification challenge of FIC's handshake GET, if
// the request is one.
func Challenge(r *http.Request) (string, bool) {
	if v := r.Header.Get(ChallengeHeader); v != "" {
		return v, true
	}
	if v := r.URL.Query().Get(ChallengeHeader); v != "" {
		return v, true
	}
	return "", false
}

// WriteChallenge answers the handshake: 200 {"verification": challenge}.
func WriteChallenge(w http.ResponseWriter, challenge string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]string{"verification": challenge})
}

// Claims are the webhook JWT's claims.
type Claims struct {
	jwt.RegisteredClaims
	AppID json.RawMessage `json:"aid,omitempty"`
}

// ReplayCache remembers accepted jti values until they expire.
type ReplayCache interface {
	// Remember records jti until exp. It returns ErrWebhookReplayed if jti
	// is already recorded.
	Remember(ctx context.Context, jti string, exp time.Time) error
}

// MemoryReplayCache is an in-process ReplayCache (for one replica or tests).
type MemoryReplayCache struct {
	Now  func() time.Time
	mu   sync.Mutex
	seen map[string]time.Time
}

// Remember implements ReplayCache.
func (m *MemoryReplayCache) Remember(_ context.Context, jti string, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	if m.seen == nil {
		m.seen = map[string]time.Time{}
	}
	t := now()
	if len(m.seen) > 10000 {
		for k, e := range m.seen {
			if e.Before(t) {
				delete(m.seen, k)
			}
		}
	}
	if e, ok := m.seen[jti]; ok && e.After(t) {
		return ErrWebhookReplayed
	}
	m.seen[jti] = exp
	return nil
}

// Verifier checks FIC's webhook JWT: ES256 under Key, iss, aud containing
// Audience (the sink URL), not expired, and (with a ReplayCache) not seen
// before.
type Verifier struct {
	Key      *ecdsa.PublicKey
	Issuer   string // default DefaultBaseURL
	Audience string // the sink URL FIC was given, compared without a trailing slash; empty skips the check
	AppID    string // optional: the expected aid claim
	// Leeway tolerates clock skew between FIC and us on exp, iat and nbf
	// (0: DefaultLeeway; negative: none). A token refused for a skew is
	// a 401, which FIC does not retry: the notification would be lost.
	Leeway time.Duration
	Replay ReplayCache
	Now    func() time.Time
}

// DefaultLeeway is the clock skew tolerated by default.
const DefaultLeeway = 60 * time.Second

// VerifyHandshake checks the token of FIC's subscription verification GET.
// What that token carries is not documented: FIC defines jti as the
// message's CloudEvents id, which a verification has not got. So it is
// checked for its signature, issuer, time claims and audience, without
// requiring a jti and without the replay cache.
func (v *Verifier) VerifyHandshake(ctx context.Context, authorization string) (*Claims, error) {
	return v.verify(ctx, authorization, false)
}

// Verify checks an Authorization header value ("Bearer <jwt>") and returns
// the claims. Errors wrap ErrWebhookAuth or ErrWebhookReplayed.
func (v *Verifier) Verify(ctx context.Context, authorization string) (*Claims, error) {
	return v.verify(ctx, authorization, true)
}

func (v *Verifier) verify(ctx context.Context, authorization string, message bool) (*Claims, error) {
	if v.Key == nil {
		return nil, fmt.Errorf("%w: no verification key configured", ErrWebhookAuth)
	}
	raw, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || raw == "" {
		return nil, fmt.Errorf("%w: missing bearer token", ErrWebhookAuth)
	}
	iss := v.Issuer
	if iss == "" {
		iss = DefaultBaseURL
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	leeway := v.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithIssuer(iss),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	}
	if message {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	var c Claims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return v.Key, nil }, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWebhookAuth, err)
	}
	if v.Audience != "" && !audienceHas(c.Audience, v.Audience) {
		return nil, fmt.Errorf("%w: aud %v does not name this sink (%s)", ErrWebhookAuth, []string(c.Audience), v.Audience)
	}
	if !message {
		return &c, nil
	}
	if c.ID == "" {
		return nil, fmt.Errorf("%w: jti missing", ErrWebhookAuth)
	}
	if v.AppID != "" && strings.Trim(string(c.AppID), `"`) != v.AppID {
		return nil, fmt.Errorf("%w: aid does not match this app", ErrWebhookAuth)
	}
	if v.Replay != nil {
		// Remembered until the token stops being accepted: its expiry
		// plus the leeway.
		if err := v.Replay.Remember(ctx, c.ID, c.ExpiresAt.Time.Add(leeway)); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// Notification is a parsed FIC webhook delivery: ids only, no data.
type Notification struct {
	ID        string // ce-id, e.g. "198:f059b211-..."; equals the JWT jti
	Type      string // e.g. EventInvoiceUpdate
	CompanyID int64  // from ce-subject "company:<id>"
	IDs       []int64
	Time      time.Time
}

// maxWebhookBody bounds a webhook body (ids only: small).
const maxWebhookBody = 1 << 20

// ParseNotification reads a binary- or structured-mode CloudEvent request.
// Errors wrap ErrWebhookPayload.
func ParseNotification(r *http.Request) (Notification, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxWebhookBody)
	msg := cehttp.NewMessageFromHttpRequest(r)
	defer msg.Finish(nil)
	if msg.ReadEncoding() == binding.EncodingUnknown {
		return Notification{}, fmt.Errorf("%w: not a CloudEvent (no ce-specversion header and not application/cloudevents+json)", ErrWebhookPayload)
	}
	ev, err := binding.ToEvent(r.Context(), msg)
	if err != nil {
		return Notification{}, fmt.Errorf("%w: %v", ErrWebhookPayload, err)
	}
	if err := ev.Validate(); err != nil {
		return Notification{}, fmt.Errorf("%w: %v", ErrWebhookPayload, err)
	}
	n := Notification{ID: ev.ID(), Type: ev.Type(), Time: ev.Time()}
	sub, ok := strings.CutPrefix(ev.Subject(), "company:")
	if !ok {
		return Notification{}, fmt.Errorf("%w: subject %q: want company:<id>", ErrWebhookPayload, ev.Subject())
	}
	if n.CompanyID, err = strconv.ParseInt(sub, 10, 64); err != nil || n.CompanyID <= 0 {
		return Notification{}, fmt.Errorf("%w: subject %q: bad company id", ErrWebhookPayload, ev.Subject())
	}
	if n.Type == EventWelcome {
		return n, nil
	}
	// Binary mode carries {"data":{"ids":[...]}} as the body; in structured
	// mode that object's "data" member is the event data, {"ids":[...]}.
	var body struct {
		Data *struct {
			IDs []json.Number `json:"ids"`
		} `json:"data"`
		IDs []json.Number `json:"ids"`
	}
	if err := json.Unmarshal(ev.Data(), &body); err != nil {
		return Notification{}, fmt.Errorf("%w: data: %v", ErrWebhookPayload, err)
	}
	ids := body.IDs
	if body.Data != nil {
		ids = body.Data.IDs
	}
	if len(ids) == 0 {
		return Notification{}, fmt.Errorf("%w: data.ids missing or empty", ErrWebhookPayload)
	}
	for _, s := range ids {
		id, err := strconv.ParseInt(s.String(), 10, 64)
		if err != nil || id <= 0 {
			return Notification{}, fmt.Errorf("%w: data.ids: bad id %q", ErrWebhookPayload, s)
		}
		n.IDs = append(n.IDs, id)
	}
	slices.Sort(n.IDs)
	n.IDs = slices.Compact(n.IDs)
	return n, nil
}

// audienceHas reports whether aud names the sink, ignoring a trailing
// slash on either side.
func audienceHas(aud jwt.ClaimStrings, sink string) bool {
	want := strings.TrimRight(sink, "/")
	for _, a := range aud {
		if strings.TrimRight(a, "/") == want {
			return true
		}
	}
	return false
}
