package kvstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2"
)

// TokensBucket holds OAuth tokens, encrypted.
const TokensBucket = "incasso_tokens"

// ErrNoToken: no token is stored for the company.
var ErrNoToken = errors.New("kvstore: no token stored")

// ParseSecretKey reads INCASSO_SECRET_KEY: 32 bytes as 64 hex characters or
// as standard/URL base64.
func ParseSecretKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("want 32 bytes as 64 hex characters or base64 (e.g. `openssl rand -hex 32`)")
}

// Connection is one OAuth authorization: a token and the FIC companies it
// reaches. A FIC token belongs to a user and covers all their companies, so
// it is stored once per connection (refreshing it rotates it for all).
type Connection struct {
	Token     *oauth2.Token `json:"token"`
	Companies []int64       `json:"companies"`
}

// Tokens stores one connection per key, sealed with AES-256-GCM; the key
// name is the additional data, so a ciphertext cannot be moved to another
// key. The KV bytes never contain the token in clear.
type Tokens struct {
	KV   jetstream.KeyValue
	aead cipher.AEAD
}

// sealer returns AES-256-GCM under a 32-byte key.
func sealer(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, errors.New("kvstore: token key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// NewTokens opens the bucket with a 32-byte key.
func NewTokens(ctx context.Context, js jetstream.JetStream, key []byte, c BucketConfig) (*Tokens, error) {
	aead, err := sealer(key)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: TokensBucket, Description: "FIC OAuth tokens, AES-256-GCM sealed",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", TokensBucket, err)
	}
	return &Tokens{KV: kv, aead: aead}, nil
}

var connKeyOK = func(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Get returns a connection and its revision. ErrNoToken if none.
func (t *Tokens) Get(ctx context.Context, key string) (Connection, uint64, error) {
	e, err := t.KV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Connection{}, 0, fmt.Errorf("%w for connection %q", ErrNoToken, key)
	}
	if err != nil {
		return Connection{}, 0, fmt.Errorf("kvstore: get connection %q: %w", key, err)
	}
	v := e.Value()
	ns := t.aead.NonceSize()
	if len(v) < ns {
		return Connection{}, 0, fmt.Errorf("kvstore: connection %q is corrupt", key)
	}
	plain, err := t.aead.Open(nil, v[:ns], v[ns:], []byte(key))
	if err != nil {
		return Connection{}, 0, fmt.Errorf("kvstore: connection %q cannot be decrypted (wrong INCASSO_SECRET_KEY?)", key)
	}
	var c Connection
	if err := json.Unmarshal(plain, &c); err != nil || c.Token == nil {
		return Connection{}, 0, fmt.Errorf("kvstore: connection %q is corrupt", key)
	}
	return c, e.Revision(), nil
}

// Put seals and stores c if the stored revision is rev (0: create).
// Returns receivables.ErrConflict if another writer got there first.
func (t *Tokens) Put(ctx context.Context, key string, c Connection, rev uint64) (uint64, error) {
	if !connKeyOK(key) {
		return 0, fmt.Errorf("kvstore: connection name %q: use letters, digits, - and _", key)
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	nonce := make([]byte, t.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return 0, err
	}
	sealed := t.aead.Seal(nonce, nonce, plain, []byte(key))
	var nrev uint64
	if rev == 0 {
		nrev, err = t.KV.Create(ctx, key, sealed)
	} else {
		nrev, err = t.KV.Update(ctx, key, sealed, rev)
	}
	if err != nil {
		return 0, fmt.Errorf("kvstore: put connection %q: %w", key, conflict(err))
	}
	return nrev, nil
}

// Connections lists the stored connection names.
func (t *Tokens) Connections(ctx context.Context) ([]string, error) {
	out, err := listKeys(ctx, t.KV)
	if err != nil {
		return nil, fmt.Errorf("kvstore: list connections: %w", err)
	}
	return out, nil
}

// Rekey re-seals every stored connection from the old key to t's key, with
// compare-and-set, and returns how many were rewritten. Connections already
// sealed with the new key are left alone, so an interrupted rotation can be
// run again.
//
// hold, if set, is called for each connection before it is re-sealed and
// must take the connection's refresh lock (tenant.LockConnection): a
// re-seal between a refresh and its save would make the save lose its
// compare-and-set after FIC had already rotated the refresh token.
func (t *Tokens) Rekey(ctx context.Context, old *Tokens, hold func(ctx context.Context, name string) (release func(), err error)) (int, error) {
	names, err := t.Connections(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		done, err := t.rekey(ctx, old, name, hold)
		if err != nil {
			return n, fmt.Errorf("kvstore: rekey %q: %w", name, err)
		}
		if done {
			n++
		}
	}
	return n, nil
}

func (t *Tokens) rekey(ctx context.Context, old *Tokens, name string, hold func(context.Context, string) (func(), error)) (bool, error) {
	if hold != nil {
		release, err := hold(ctx, name)
		if err != nil {
			return false, err
		}
		defer release()
	}
	if _, _, err := t.Get(ctx, name); err == nil {
		return false, nil // already under the new key
	}
	c, rev, err := old.Get(ctx, name)
	if err != nil {
		return false, err
	}
	if _, err := t.Put(ctx, name, c, rev); err != nil {
		return false, err
	}
	return true, nil
}

// Open returns a Tokens view of the same bucket under another key (for
// Rekey).
func (t *Tokens) Open(key []byte) (*Tokens, error) {
	aead, err := sealer(key)
	if err != nil {
		return nil, err
	}
	return &Tokens{KV: t.KV, aead: aead}, nil
}

// Seal encrypts plain for name with the store's key, outside the bucket
// (the token spool): the additional data binds it to name and to the
// spool, so it cannot pass for a bucket value.
func (t *Tokens) Seal(name string, plain []byte) ([]byte, error) {
	nonce := make([]byte, t.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return t.aead.Seal(nonce, nonce, plain, []byte("spool|"+name)), nil
}

// Unseal decrypts what Seal sealed for name.
func (t *Tokens) Unseal(name string, sealed []byte) ([]byte, error) {
	ns := t.aead.NonceSize()
	if len(sealed) < ns {
		return nil, errors.New("kvstore: sealed data too short")
	}
	plain, err := t.aead.Open(nil, sealed[:ns], sealed[ns:], []byte("spool|"+name))
	if err != nil {
		return nil, errors.New("kvstore: sealed data cannot be decrypted (wrong INCASSO_SECRET_KEY?)")
	}
	return plain, nil
}
