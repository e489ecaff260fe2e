// Package tenant turns stored OAuth connections into FIC credentials that
// many replicas can share safely. FIC rotates refresh tokens: a refresh
// invalidates the previous refresh token, so two replicas refreshing the same
// connection at once would lock one of them out. Here a refresh happens only
// under the connection's refresh lease, re-reads the stored token first (the
// other replica may have refreshed already) and saves the new one with
// compare-and-set before it is used. Tokens are encrypted at rest by the
// store (kvstore.Tokens).
package tenant

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/kvstore"
)

// Store is where connections live (kvstore.Tokens).
type Store interface {
	Get(ctx context.Context, key string) (kvstore.Connection, uint64, error)
	Put(ctx context.Context, key string, c kvstore.Connection, rev uint64) (uint64, error)
}

// Locker serialises refreshes across replicas (kvstore.Leases).
type Locker interface {
	AcquireKey(ctx context.Context, key string) (uint64, error)
	ReleaseKey(ctx context.Context, key string, rev uint64) error
}

// Credentials are one connection's tokens; they implement fic.Credentials.
type Credentials struct {
	OAuth *fic.OAuth
	Store Store
	Lock  Locker
	Key   string // connection name
	Now   func() time.Time

	mu  sync.Mutex
	tok *oauth2.Token
}

var _ fic.Credentials = (*Credentials)(nil)

func (c *Credentials) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Credentials) fresh(t *oauth2.Token) bool {
	return t != nil && t.AccessToken != "" && (t.Expiry.IsZero() || t.Expiry.After(c.now().Add(5*time.Minute)))
}

// Token implements fic.Credentials.
func (c *Credentials) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fresh(c.tok) {
		return c.tok.AccessToken, nil
	}
	conn, _, err := c.Store.Get(ctx, c.Key)
	if err != nil {
		return "", err
	}
	if c.fresh(conn.Token) {
		c.tok = conn.Token
		return c.tok.AccessToken, nil
	}
	return c.refreshLocked(ctx, "")
}

// Refresh implements fic.Credentials (called after a 401).
func (c *Credentials) Refresh(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	failed := ""
	if c.tok != nil {
		failed = c.tok.AccessToken
	}
	return c.refreshLocked(ctx, failed)
}

// refreshLocked refreshes under the connection's lock. failed is the access
// token FIC refused (if any): a stored token different from it is newer and
// is used without calling FIC.
func (c *Credentials) refreshLocked(ctx context.Context, failed string) (string, error) {
	lockKey := "refresh_" + c.Key
	var lockRev uint64
	for attempt := 0; ; attempt++ {
		rev, err := c.Lock.AcquireKey(ctx, lockKey)
		if err == nil {
			lockRev = rev
			break
		}
		if !errors.Is(err, kvstore.ErrLeaseHeld) || attempt >= 30 {
			return "", fmt.Errorf("tenant: refresh lock of %q: %w", c.Key, err)
		}
		select { // another replica is refreshing: wait for it
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if conn, _, err := c.Store.Get(ctx, c.Key); err == nil && c.fresh(conn.Token) && conn.Token.AccessToken != failed {
			c.tok = conn.Token
			return c.tok.AccessToken, nil
		}
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = c.Lock.ReleaseKey(rctx, lockKey, lockRev)
	}()
	conn, rev, err := c.Store.Get(ctx, c.Key)
	if err != nil {
		return "", err
	}
	if c.fresh(conn.Token) && conn.Token.AccessToken != failed {
		c.tok = conn.Token // someone refreshed while we waited
		return c.tok.AccessToken, nil
	}
	saver := &saver{store: c.Store, key: c.Key, conn: conn, rev: rev}
	tok, err := c.OAuth.Credentials(conn.Token, saver).Refresh(ctx)
	if err != nil {
		return "", fmt.Errorf("tenant: connection %q: %w", c.Key, err)
	}
	c.tok = saver.conn.Token
	return tok, nil
}

// saver writes the refreshed token back with CAS on the revision read.
type saver struct {
	store Store
	key   string
	conn  kvstore.Connection
	rev   uint64
}

func (s *saver) Save(ctx context.Context, tok *oauth2.Token) error {
	s.conn.Token = tok
	rev, err := s.store.Put(ctx, s.key, s.conn, s.rev)
	if err != nil {
		return err
	}
	s.rev = rev
	return nil
}
