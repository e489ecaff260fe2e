package kvstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeasesBucket holds leases shared by replicas and services (a
// connection's OAuth refresh lock); entries expire after the TTL. Companies
// are no longer leased one by one: see Partitions.
const LeasesBucket = "incasso_leases"

// ErrLeaseHeld: another replica holds the lease. ErrLeaseLost: our lease was
// taken over or expired before we renewed it.
var (
	ErrLeaseHeld = errors.New("kvstore: lease held by another replica")
	ErrLeaseLost = errors.New("kvstore: lease lost")
)

// Leases grants a named lease to exactly one holder at a time. A lease is a
// KV entry whose value is the holder's id; it expires TTL after its last
// renewal, so a dead holder's lease is free within one TTL.
type Leases struct {
	KV    jetstream.KeyValue
	Owner string
	TTL   time.Duration // the bucket's: what renewals follow
	// Configured is the TTL this process asked for (it differs from TTL
	// when the bucket already had another one).
	Configured time.Duration
}

// NewLeases opens the bucket, creating it with ttl if it does not exist.
//
// An existing bucket's TTL wins over ttl: every replica renews on the
// bucket's TTL, whatever its own POLLER_LEASE_TTL says. Before, each
// replica set the bucket's TTL to its own at start, so replicas with
// different settings expired each other's leases (a 30 s replica, renewing
// every 10 s in a bucket another replica had set to 3 s, lost its leases
// three times a minute). Leases.Configured keeps what was asked, for the
// warning; changing the TTL is deliberate: stop the pollers and edit the
// bucket (nats kv edit incasso_leases --ttl ...).
func NewLeases(ctx context.Context, js jetstream.JetStream, owner string, ttl time.Duration, c BucketConfig) (*Leases, error) {
	if owner == "" || ttl < time.Second {
		return nil, errors.New("kvstore: leases need an owner and a TTL of at least 1s")
	}
	kv, err := openOrCreate(ctx, js, jetstream.KeyValueConfig{
		Bucket: LeasesBucket, Description: "leases shared by replicas (OAuth token refresh locks)", History: 1, TTL: ttl,
		Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas),
	})
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", LeasesBucket, err)
	}
	return &Leases{KV: kv, Owner: owner, TTL: st.TTL(), Configured: ttl}, nil
}

// OpenLeases opens the leases bucket as it is (another process, the
// poller, sets its TTL), creating it with a 30 s TTL if it does not exist
// yet: a second user of the bucket must not change its TTL under the
// poller's leases.
func OpenLeases(ctx context.Context, js jetstream.JetStream, owner string, c BucketConfig) (*Leases, error) {
	kv, err := js.KeyValue(ctx, LeasesBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return NewLeases(ctx, js, owner, 30*time.Second, c)
	}
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", LeasesBucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", LeasesBucket, err)
	}
	return &Leases{KV: kv, Owner: owner, TTL: st.TTL()}, nil
}

// LostError is the sentinel Renew wraps when the lease is lost (the runner
// stops the company at once on it, and tolerates other errors until the TTL).
func (l *Leases) LostError() error { return ErrLeaseLost }

// Acquire takes the company's lease if it is free (or already ours) and
// returns its revision. ErrLeaseHeld if another replica holds it.
func (l *Leases) Acquire(ctx context.Context, cid int64) (uint64, error) {
	return l.AcquireKey(ctx, strconv.FormatInt(cid, 10))
}

// Renew extends our lease of a company held at revision rev.
func (l *Leases) Renew(ctx context.Context, cid int64, rev uint64) (uint64, error) {
	return l.RenewKey(ctx, strconv.FormatInt(cid, 10), rev)
}

// Release gives a company's lease up (on shutdown) so another replica can
// take it at once.
func (l *Leases) Release(ctx context.Context, cid int64, rev uint64) error {
	return l.ReleaseKey(ctx, strconv.FormatInt(cid, 10), rev)
}

// AcquireKey is Acquire for any lease name (e.g. "refresh.<connection>").
func (l *Leases) AcquireKey(ctx context.Context, key string) (uint64, error) {
	rev, err := l.KV.Create(ctx, key, []byte(l.Owner))
	if err == nil {
		return rev, nil
	}
	if !errors.Is(conflict(err), errConflictSentinel) {
		return 0, fmt.Errorf("kvstore: acquire lease %s: %w", key, err)
	}
	e, gerr := l.KV.Get(ctx, key)
	if gerr != nil {
		return 0, fmt.Errorf("%w (lease %s)", ErrLeaseHeld, key)
	}
	if string(e.Value()) != l.Owner {
		return 0, fmt.Errorf("%w: lease %s by %s", ErrLeaseHeld, key, e.Value())
	}
	return l.RenewKey(ctx, key, e.Revision())
}

// RenewKey extends our lease held at revision rev. ErrLeaseLost if it changed.
func (l *Leases) RenewKey(ctx context.Context, key string, rev uint64) (uint64, error) {
	nrev, err := l.KV.Update(ctx, key, []byte(l.Owner), rev)
	if err != nil {
		if errors.Is(conflict(err), errConflictSentinel) || errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, fmt.Errorf("%w: lease %s", ErrLeaseLost, key)
		}
		return 0, fmt.Errorf("kvstore: renew lease %s: %w", key, err)
	}
	return nrev, nil
}

// ReleaseKey gives a lease up.
func (l *Leases) ReleaseKey(ctx context.Context, key string, rev uint64) error {
	err := l.KV.Delete(ctx, key, jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("kvstore: release lease %s: %w", key, conflict(err))
	}
	return nil
}
