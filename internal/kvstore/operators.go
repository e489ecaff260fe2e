package kvstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// OperatorsBucket holds the ops API's operators: one per token id, the
// token stored as a SHA-256 hash only.
const OperatorsBucket = "incasso_operators"

// Roles of operators, each allowed what the previous one is and more.
const (
	RoleViewer   = "viewer"   // read cases, timelines, previews, reports, the approval queue
	RoleOperator = "operator" // + remind, pause, resume, dispute, promise, approve catch-up reminders
	RoleAdmin    = "admin"    // + write off, approve formal steps (notice, hand-off), switch a company's mode
)

// Rank orders roles (0: unknown).
func Rank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// ErrBadToken: the token is unknown, revoked or wrong.
var ErrBadToken = errors.New("kvstore: invalid operator token")

// Operator is one person with access to the ops API.
type Operator struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Hash      string    `json:"hash"` // hex SHA-256 of the token's secret part
	Created   time.Time `json:"created"`
	Revoked   time.Time `json:"revoked,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// Operators stores operators.
type Operators struct{ KV jetstream.KeyValue }

// NewOperators opens the bucket.
func NewOperators(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Operators, error) {
	kv, err := bucket(ctx, js, OperatorsBucket, "ops API operators (token hashes and roles)", c)
	return &Operators{KV: kv}, err
}

var operatorName = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} ._@-]{0,63}$`)

// TokenPrefix starts every operator token.
const TokenPrefix = "inc_"

// Add creates an operator and returns its token, which is shown once and
// stored only as a hash.
func (o *Operators) Add(ctx context.Context, name, role, by string) (string, Operator, error) {
	if !operatorName.MatchString(name) {
		return "", Operator{}, fmt.Errorf("kvstore: operator name %q: letters, digits, space . _ @ -, up to 64", name)
	}
	if Rank(role) == 0 {
		return "", Operator{}, fmt.Errorf("kvstore: role %q: want viewer, operator or admin", role)
	}
	all, err := o.List(ctx)
	if err != nil {
		return "", Operator{}, err
	}
	for _, x := range all {
		if strings.EqualFold(x.Name, name) && x.Revoked.IsZero() {
			return "", Operator{}, fmt.Errorf("kvstore: operator %q exists (revoke it first)", name)
		}
	}
	id, secret := make([]byte, 6), make([]byte, 24)
	_, _ = rand.Read(id)
	_, _ = rand.Read(secret)
	sum := sha256.Sum256(secret)
	op := Operator{ID: hex.EncodeToString(id), Name: name, Role: role, Hash: hex.EncodeToString(sum[:]), Created: time.Now().UTC(), CreatedBy: by}
	b, _ := json.Marshal(op)
	if _, err := o.KV.Create(ctx, op.ID, b); err != nil {
		return "", Operator{}, fmt.Errorf("kvstore: add operator: %w", err)
	}
	return TokenPrefix + op.ID + "_" + hex.EncodeToString(secret), op, nil
}

// Authenticate returns the operator of a token.
func (o *Operators) Authenticate(ctx context.Context, token string) (Operator, error) {
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	id, secretHex, ok2 := strings.Cut(rest, "_")
	secret, err := hex.DecodeString(secretHex)
	if !ok || !ok2 || err != nil || len(id) != 12 {
		return Operator{}, ErrBadToken
	}
	e, err := o.KV.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Operator{}, ErrBadToken
	}
	if err != nil {
		return Operator{}, fmt.Errorf("kvstore: operator: %w", err)
	}
	var op Operator
	if err := json.Unmarshal(e.Value(), &op); err != nil {
		return Operator{}, fmt.Errorf("kvstore: operator %s is corrupt", id)
	}
	sum := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(op.Hash)) != 1 || !op.Revoked.IsZero() {
		return Operator{}, ErrBadToken
	}
	return op, nil
}

// List returns every operator, revoked ones included.
func (o *Operators) List(ctx context.Context) ([]Operator, error) {
	keys, err := listKeys(ctx, o.KV)
	if err != nil {
		return nil, fmt.Errorf("kvstore: list operators: %w", err)
	}
	var out []Operator
	for _, k := range keys {
		var op Operator
		if rev, err := getJSON(ctx, o.KV, k, &op); err != nil {
			return nil, err
		} else if rev > 0 {
			out = append(out, op)
		}
	}
	return out, nil
}

// Revoke revokes the active operator of that name; its token stops working
// at once.
func (o *Operators) Revoke(ctx context.Context, name string) error {
	all, err := o.List(ctx)
	if err != nil {
		return err
	}
	for _, op := range all {
		if strings.EqualFold(op.Name, name) && op.Revoked.IsZero() {
			op.Revoked = time.Now().UTC()
			b, _ := json.Marshal(op)
			if _, err := o.KV.Put(ctx, op.ID, b); err != nil {
				return fmt.Errorf("kvstore: revoke %q: %w", name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("kvstore: no active operator %q", name)
}

// Active returns the operator with that id if it is not revoked
// (ErrBadToken otherwise): a console session checks it on every request,
// so revoking an operator ends their sessions too.
func (o *Operators) Active(ctx context.Context, id string) (Operator, error) {
	var op Operator
	rev, err := getJSON(ctx, o.KV, id, &op)
	if err != nil {
		return op, err
	}
	if rev == 0 || !op.Revoked.IsZero() {
		return Operator{}, ErrBadToken
	}
	return op, nil
}

// SessionsBucket keeps console sign-ins; entries expire with the bucket's
// TTL.
const SessionsBucket = "incasso_console_sessions"

// Session is a signed-in console user.
type Session struct {
	OperatorID string    `json:"operator_id,omitempty"` // "" for the shared token
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	Shared     bool      `json:"shared,omitempty"`
	CSRF       string    `json:"csrf"`
	Created    time.Time `json:"created"`
}

// Sessions stores console sessions under random ids.
type Sessions struct{ KV jetstream.KeyValue }

// NewSessions opens the bucket; a session lasts ttl.
func NewSessions(ctx context.Context, js jetstream.JetStream, ttl time.Duration, c BucketConfig) (*Sessions, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: SessionsBucket, Description: "console sign-ins (expire by TTL)",
		History: 1, TTL: ttl, Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas)})
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", SessionsBucket, err)
	}
	return &Sessions{KV: kv}, nil
}

// Create stores a session and returns its id.
func (s *Sessions) Create(ctx context.Context, sess Session) (string, error) {
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	key := hex.EncodeToString(id)
	b, _ := json.Marshal(sess)
	if _, err := s.KV.Create(ctx, key, b); err != nil {
		return "", fmt.Errorf("kvstore: session: %w", err)
	}
	return key, nil
}

// Get returns a session (ErrBadToken when absent or expired).
func (s *Sessions) Get(ctx context.Context, id string) (Session, error) {
	var sess Session
	if len(id) != 64 {
		return sess, ErrBadToken
	}
	if _, err := hex.DecodeString(id); err != nil {
		return sess, ErrBadToken
	}
	rev, err := getJSON(ctx, s.KV, id, &sess)
	if err != nil {
		return sess, err
	}
	if rev == 0 {
		return sess, ErrBadToken
	}
	return sess, nil
}

// Delete ends a session.
func (s *Sessions) Delete(ctx context.Context, id string) error {
	if err := s.KV.Delete(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	return nil
}
