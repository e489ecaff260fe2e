package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// SnapshotsBucket is the KV bucket of document snapshots.
const SnapshotsBucket = "incasso_snapshots"

// Snapshots stores one snapshot per document under <company_id>.<document_id>.
type Snapshots struct {
	KV jetstream.KeyValue
}

var _ rcv.SnapshotStore = (*Snapshots)(nil)

// BucketConfig is shared by the buckets.
type BucketConfig struct {
	Replicas int // default 1
}

// NewSnapshots creates (or opens) the bucket.
func NewSnapshots(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Snapshots, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: SnapshotsBucket, Description: "last seen state of every FIC document",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", SnapshotsBucket, err)
	}
	return &Snapshots{KV: kv}, nil
}

func snapKey(cid, id int64) string {
	return strconv.FormatInt(cid, 10) + "." + strconv.FormatInt(id, 10)
}

// conflict maps JetStream's CAS failures to receivables.ErrConflict. On
// replicated buckets a failed Create can surface as a wrong-last-sequence
// API error rather than ErrKeyExists, so both are matched.
func conflict(err error) error {
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
		return fmt.Errorf("%w: %v", rcv.ErrConflict, err)
	}
	return err
}

// Get implements receivables.SnapshotStore.
func (s *Snapshots) Get(ctx context.Context, cid, id int64) (rcv.Snapshot, uint64, error) {
	e, err := s.KV.Get(ctx, snapKey(cid, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rcv.Snapshot{}, 0, nil
	}
	if err != nil {
		return rcv.Snapshot{}, 0, fmt.Errorf("kvstore: get snapshot %d/%d: %w", cid, id, err)
	}
	var snap rcv.Snapshot
	if err := json.Unmarshal(e.Value(), &snap); err != nil {
		return rcv.Snapshot{}, 0, fmt.Errorf("kvstore: snapshot %d/%d is corrupt: %w", cid, id, err)
	}
	return snap, e.Revision(), nil
}

// Put implements receivables.SnapshotStore.
func (s *Snapshots) Put(ctx context.Context, cid, id int64, snap rcv.Snapshot, rev uint64) (uint64, error) {
	b, err := json.Marshal(snap)
	if err != nil {
		return 0, fmt.Errorf("kvstore: encode snapshot %d/%d: %w", cid, id, err)
	}
	var nrev uint64
	if rev == 0 {
		nrev, err = s.KV.Create(ctx, snapKey(cid, id), b)
	} else {
		nrev, err = s.KV.Update(ctx, snapKey(cid, id), b, rev)
	}
	if err != nil {
		return 0, fmt.Errorf("kvstore: put snapshot %d/%d at revision %d: %w", cid, id, rev, conflict(err))
	}
	return nrev, nil
}

// Delete implements receivables.SnapshotStore.
func (s *Snapshots) Delete(ctx context.Context, cid, id int64, rev uint64) error {
	// Purge rather than delete: no tombstone history is kept per document.
	if err := s.KV.Purge(ctx, snapKey(cid, id), jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("kvstore: delete snapshot %d/%d: %w", cid, id, conflict(err))
	}
	return nil
}

// IDs implements receivables.SnapshotStore.
func (s *Snapshots) IDs(ctx context.Context, cid int64) ([]int64, error) {
	prefix := strconv.FormatInt(cid, 10) + "."
	lister, err := s.KV.ListKeysFiltered(ctx, prefix+"*")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kvstore: list snapshots of %d: %w", cid, err)
	}
	var ids []int64
	for k := range lister.Keys() {
		id, err := strconv.ParseInt(strings.TrimPrefix(k, prefix), 10, 64)
		if err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

var errConflictSentinel = rcv.ErrConflict
