package kvstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/poller"
)

// MembersBucket holds one key per live poller replica; a key expires TTL
// after the replica's last heartbeat. PartitionsBucket holds one key per
// held partition (its value: the holder), written only when the partition
// changes hands; it never expires: a holder that is no longer a member has
// lost it.
const (
	MembersBucket    = "incasso_poller_members"
	PartitionsBucket = "incasso_poller_partitions"
)

// ErrPartitionTaken: the partition is no longer as the caller saw it.
var ErrPartitionTaken = errors.New("kvstore: partition changed hands")

// Partitions is poller.Membership on two KV buckets. Its writes per second
// are one heartbeat per replica every TTL/3, plus one per hand-over: they
// do not grow with the number of companies.
type Partitions struct {
	members, parts jetstream.KeyValue
	stream         jetstream.Stream // the members bucket's
	self           string
	ttl            time.Duration
	// Configured is the TTL this process asked for (the bucket's wins, as
	// for Leases).
	Configured time.Duration
}

// NewPartitions opens (or creates) the buckets. As with Leases, an
// existing members bucket's TTL wins over ttl, so replicas configured
// differently still agree on when a replica is dead.
func NewPartitions(ctx context.Context, js jetstream.JetStream, self string, ttl time.Duration, c BucketConfig) (*Partitions, error) {
	if self == "" || strings.ContainsAny(self, ".*> ") || ttl < time.Second {
		return nil, fmt.Errorf("kvstore: partitions need a member name without '.', '*', '>' or spaces (got %q) and a TTL of at least 1s", self)
	}
	members, err := openOrCreate(ctx, js, jetstream.KeyValueConfig{
		Bucket: MembersBucket, Description: "live poller replicas", History: 1, TTL: ttl,
		Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas),
	})
	if err != nil {
		return nil, err
	}
	st, err := members.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", MembersBucket, err)
	}
	parts, err := bucket(ctx, js, PartitionsBucket, "which poller replica holds each partition of companies", c)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, "KV_"+MembersBucket)
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", MembersBucket, err)
	}
	return &Partitions{members: members, parts: parts, stream: stream, self: self, ttl: st.TTL(), Configured: ttl}, nil
}

// openOrCreate opens a bucket as it is, creating it with cfg if it does
// not exist: a bucket whose TTL every replica must follow is never updated
// to one replica's setting (bucket, for the others, updates).
func openOrCreate(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

var _ poller.Membership = (*Partitions)(nil)

// Self is this replica's name.
func (p *Partitions) Self() string { return p.self }

// TTL is the members bucket's TTL.
func (p *Partitions) TTL() time.Duration { return p.ttl }

// Heartbeat renews this replica's membership.
func (p *Partitions) Heartbeat(ctx context.Context) error {
	if _, err := p.members.Put(ctx, p.self, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("kvstore: heartbeat: %w", err)
	}
	return nil
}

// Members lists the live replicas, sorted. It reads the subjects the
// members bucket's stream holds in one request: a point-in-time answer (a
// key listing through a watcher can miss a key being renewed while it
// lists, and a replica that is renewing is not dead).
func (p *Partitions) Members(ctx context.Context) ([]string, error) {
	prefix := "$KV." + MembersBucket + "."
	info, err := p.stream.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("kvstore: members: %w", err)
	}
	out := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		name := strings.TrimPrefix(subj, prefix)
		// A replica that left keeps a delete marker until it expires.
		if _, err := p.members.Get(ctx, name); errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("kvstore: member %s: %w", name, err)
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

// Holdings returns every held partition.
func (p *Partitions) Holdings(ctx context.Context) (map[int]poller.Holding, error) {
	w, err := p.parts.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("kvstore: partitions: %w", err)
	}
	defer func() { _ = w.Stop() }()
	out := map[int]poller.Holding{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil {
				return out, nil
			}
			n, err := strconv.Atoi(e.Key())
			if err != nil || n < 0 || n >= poller.Partitions {
				continue // not a partition of this version
			}
			out[n] = poller.Holding{Holder: string(e.Value()), Rev: e.Revision()}
		}
	}
}

// Claim takes partition n if it is still as was says (was.Rev 0: free).
func (p *Partitions) Claim(ctx context.Context, n int, was poller.Holding) (poller.Holding, error) {
	key := strconv.Itoa(n)
	var rev uint64
	var err error
	if was.Rev == 0 {
		rev, err = p.parts.Create(ctx, key, []byte(p.self))
	} else {
		rev, err = p.parts.Update(ctx, key, []byte(p.self), was.Rev)
	}
	if err != nil {
		if errors.Is(conflict(err), errConflictSentinel) || errors.Is(err, jetstream.ErrKeyExists) {
			return poller.Holding{}, fmt.Errorf("%w: partition %d", ErrPartitionTaken, n)
		}
		return poller.Holding{}, fmt.Errorf("kvstore: claim partition %d: %w", n, err)
	}
	return poller.Holding{Holder: p.self, Rev: rev}, nil
}

// Release gives partition n up if it is still held as h.
func (p *Partitions) Release(ctx context.Context, n int, h poller.Holding) error {
	err := p.parts.Delete(ctx, strconv.Itoa(n), jetstream.LastRevision(h.Rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("kvstore: release partition %d: %w", n, conflict(err))
	}
	return nil
}

// Leave ends this replica's membership at once.
func (p *Partitions) Leave(ctx context.Context) error {
	if err := p.members.Delete(ctx, p.self); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("kvstore: leave: %w", err)
	}
	return nil
}
