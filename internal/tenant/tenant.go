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
	"log/slog"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/kvstore"
	rcv "github.com/incasso-io/incasso/internal/receivables"
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

// Spool keeps a refreshed token that could not be saved yet (NATS down,
// the process about to die), outside NATS, until it is: FIC rotates the
// refresh token on every refresh, so a refreshed token that is lost kills
// the connection for good. (DirSpool: sealed files in the data directory.)
type Spool interface {
	Put(key string, tok *oauth2.Token) error
	Get(key string) (*oauth2.Token, error) // nil, nil: none
	Remove(key string) error
}

// Credentials are one connection's tokens; they implement fic.Credentials.
type Credentials struct {
	OAuth *fic.OAuth
	Store Store
	Lock  Locker
	Key   string // connection name
	Now   func() time.Time
	// Spool keeps refreshed tokens until they are saved (nil: none; a
	// token whose save fails is then kept in memory only).
	Spool Spool
	Log   *slog.Logger

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
	if tok := c.unspool(ctx); c.fresh(tok) {
		c.tok = tok
		return tok.AccessToken, nil
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

// unspool saves a token an earlier refresh could not save (a spooled one
// is always the newest: it is spooled before its save and removed after)
// and returns it; nil if there is none.
func (c *Credentials) unspool(ctx context.Context) *oauth2.Token {
	if c.Spool == nil {
		return nil
	}
	tok, err := c.Spool.Get(c.Key)
	if err != nil || tok == nil {
		return nil
	}
	if err := c.saveLatest(ctx, tok); err != nil {
		c.log().Error("spooled FIC token still not saved", "connection", c.Key, "error", err)
		return tok
	}
	_ = c.Spool.Remove(c.Key)
	c.log().Info("spooled FIC token saved", "connection", c.Key)
	return tok
}

// saveLatest stores tok as the connection's token over whatever revision
// is stored now (the caller holds the refresh lock, or the token is the
// spooled newest): a compare-and-set lost to another writer (a key
// rotation, a reconnect adding companies) re-reads and writes again.
func (c *Credentials) saveLatest(ctx context.Context, tok *oauth2.Token) error {
	var last error
	for attempt := 0; attempt < 8; attempt++ {
		conn, rev, err := c.Store.Get(ctx, c.Key)
		if err != nil {
			return err
		}
		conn.Token = tok
		_, err = c.Store.Put(ctx, c.Key, conn, rev)
		if err == nil || !errors.Is(err, rcv.ErrConflict) {
			return err
		}
		last = err
	}
	return last
}

func (c *Credentials) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
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
	if tok := c.unspool(ctx); tok != nil && tok.AccessToken != failed {
		c.tok = tok // refreshed before a crash or an outage, saved now
		return tok.AccessToken, nil
	}
	conn, _, err := c.Store.Get(ctx, c.Key)
	if err != nil {
		return "", err
	}
	if c.fresh(conn.Token) && conn.Token.AccessToken != failed {
		c.tok = conn.Token // someone refreshed while we waited
		return c.tok.AccessToken, nil
	}
	sv := &saver{c: c}
	tok, err := c.OAuth.Credentials(conn.Token, sv).Refresh(ctx)
	if err != nil {
		return "", fmt.Errorf("tenant: connection %q: %w", c.Key, err)
	}
	c.tok = sv.tok
	return tok, nil
}

// saver keeps a refreshed token: spooled first, then stored (retrying,
// over a concurrent writer's revision), then unspooled. FIC has already
// rotated the refresh token when Save is called, so Save never fails: a
// failure would drop the only copy.
type saver struct {
	c   *Credentials
	tok *oauth2.Token
}

func (s *saver) Save(ctx context.Context, tok *oauth2.Token) error {
	c := s.c
	s.tok = tok
	spooled := false
	if c.Spool != nil {
		if err := c.Spool.Put(c.Key, tok); err != nil {
			c.log().Error("refreshed FIC token not spooled", "connection", c.Key, "error", err)
		} else {
			spooled = true
		}
	}
	// The save must not be cut by the caller's context: the token exists
	// only here now.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), SaveTimeout)
	defer cancel()
	var err error
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		if err = c.saveLatest(sctx, tok); err == nil {
			if spooled {
				_ = c.Spool.Remove(c.Key)
			}
			return nil
		}
		select {
		case <-time.After(wait):
			continue
		case <-sctx.Done():
		}
		break
	}
	if spooled {
		c.log().Error("refreshed FIC token not saved yet; kept in the spool, saved at the next use", "connection", c.Key, "error", err)
	} else {
		c.log().Error("refreshed FIC token saved nowhere: kept in memory only", "connection", c.Key, "error", err)
	}
	return nil
}

// SaveTimeout bounds how long a refreshed token's save is retried before
// it is left in the spool.
var SaveTimeout = 30 * time.Second

// LockConnection takes a connection's refresh lock (the one refreshes run
// under), waiting while another holder has it, and returns its release.
// Whatever rewrites a connection's token outside a refresh — the key
// rotation — takes it, so it cannot come between a refresh and its save.
func LockConnection(ctx context.Context, lock Locker, key string) (func(), error) {
	lockKey := "refresh_" + key
	for attempt := 0; ; attempt++ {
		rev, err := lock.AcquireKey(ctx, lockKey)
		if err == nil {
			return func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = lock.ReleaseKey(rctx, lockKey, rev)
			}, nil
		}
		if !errors.Is(err, kvstore.ErrLeaseHeld) || attempt >= 120 {
			return nil, fmt.Errorf("tenant: refresh lock of %q: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
