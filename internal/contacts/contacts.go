// Package contacts keeps each FIC client's current contacts (e-mail, PEC,
// phone, address), so that a reminder goes to the address the client has
// today and not to the one copied onto the invoice when it was issued.
//
// Cache is read-through: a reminder asks for a client, the cache answers
// from its store while the entry is younger than TTL, and otherwise reads
// FIC (one GET /c/{cid}/entities/clients/{id}) and stores the answer. FIC's
// entities.clients.update webhook makes the poller Invalidate the entry
// (a KV delete, no FIC request), so an edited contact is read again before
// the next reminder. When FIC cannot be read, a stale entry is used and
// the failure logged; with no entry at all the invoice's snapshot stands
// (the caller's fallback).
package contacts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// ErrNotFound: the store has no entry for the client.
var ErrNotFound = errors.New("contacts: not cached")

// Entry is a cached client record.
type Entry struct {
	Client    rcv.Client `json:"client"`
	FetchedAt time.Time  `json:"fetched_at"`
}

// Store keeps entries per company and client.
type Store interface {
	Get(ctx context.Context, cid, clientID int64) (Entry, error) // ErrNotFound when absent
	Put(ctx context.Context, cid int64, e Entry) error
	Delete(ctx context.Context, cid, clientID int64) error
}

// Fetch reads a client's current record from FIC.
type Fetch func(ctx context.Context, cid, clientID int64) (rcv.Client, error)

// Cache is the read-through cache. Safe for concurrent use.
type Cache struct {
	Store Store
	Fetch Fetch
	TTL   time.Duration // default 24h: the webhook refreshes sooner
	Now   func() time.Time
	Log   *slog.Logger
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache) ttl() time.Duration {
	if c.TTL > 0 {
		return c.TTL
	}
	return 24 * time.Hour
}

// Get returns the client's current record.
func (c *Cache) Get(ctx context.Context, cid, clientID int64) (rcv.Client, error) {
	e, err := c.Store.Get(ctx, cid, clientID)
	cached := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return rcv.Client{}, fmt.Errorf("contacts: client %d of company %d: %w", clientID, cid, err)
	}
	if cached && c.now().Sub(e.FetchedAt) < c.ttl() {
		return e.Client, nil
	}
	fresh, ferr := c.Fetch(ctx, cid, clientID)
	if ferr != nil {
		if cached {
			if c.Log != nil {
				c.Log.Warn("client contacts from FIC unavailable; using those read earlier", "company_id", cid, "client_id", clientID, "fetched_at", e.FetchedAt, "error", ferr)
			}
			return e.Client, nil
		}
		return rcv.Client{}, fmt.Errorf("contacts: client %d of company %d: %w", clientID, cid, ferr)
	}
	fresh.ID = clientID
	if err := c.Store.Put(ctx, cid, Entry{Client: fresh, FetchedAt: c.now()}); err != nil && c.Log != nil {
		c.Log.Warn("client contacts not cached", "company_id", cid, "client_id", clientID, "error", err)
	}
	return fresh, nil
}

// Invalidate drops the entries of clients FIC says changed.
func (c *Cache) Invalidate(ctx context.Context, cid int64, clientIDs ...int64) error {
	for _, id := range clientIDs {
		if err := c.Store.Delete(ctx, cid, id); err != nil {
			return fmt.Errorf("contacts: invalidate client %d of company %d: %w", id, cid, err)
		}
	}
	return nil
}
