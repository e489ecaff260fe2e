package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/natsrv"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// SnapshotsBucket is the KV bucket of document snapshots.
const SnapshotsBucket = "incasso_snapshots"

// Snapshots stores one snapshot per document under <company_id>.<document_id>.
type Snapshots struct {
	KV jetstream.KeyValue
	js jetstream.JetStream
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
	return &Snapshots{KV: kv, js: js}, nil
}

// putPrefix is the subject prefix of the bucket's keys: what KeyValue.Put
// publishes to for a bucket of ours (no JetStream domain, not a mirror).
const putPrefix = "$KV." + SnapshotsBucket + "."

func snapKey(cid, id int64) string {
	return strconv.FormatInt(cid, 10) + "." + strconv.FormatInt(id, 10)
}

// conflict maps JetStream's CAS failures to receivables.ErrConflict: the KV
// API's ErrKeyExists and ErrKeyRevisionMismatch, and the raw
// wrong-last-sequence API errors of a publish with an expected last
// sequence (PutAll), which replicated streams report as 10164 rather than
// 10071.
func conflict(err error) error {
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		(errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)) {
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

// PutAll implements receivables.SnapshotStore. Each write is what
// KeyValue.Update and Create publish — the key's subject with the expected
// last revision — but the whole batch goes out asynchronously and the acks
// are awaited together. A create over a purge marker (a deleted document
// that came back) reports a conflict; Put handles it on the retry.
func (s *Snapshots) PutAll(ctx context.Context, writes []rcv.SnapshotWrite) []error {
	errs := make([]error, len(writes))
	batch := make([]natsrv.Pub, 0, len(writes))
	index := make([]int, 0, len(writes))
	for i, w := range writes {
		b, err := json.Marshal(w.Snapshot)
		if err != nil {
			errs[i] = fmt.Errorf("kvstore: encode snapshot %d/%d: %w", w.CompanyID, w.ID, err)
			continue
		}
		batch = append(batch, natsrv.Pub{Msg: &nats.Msg{Subject: putPrefix + snapKey(w.CompanyID, w.ID), Header: nats.Header{}, Data: b},
			Opts: []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(w.Rev)}})
		index = append(index, i)
	}
	_, perrs := natsrv.PublishAll(ctx, s.js, batch)
	for k, err := range perrs {
		if err != nil {
			w := writes[index[k]]
			errs[index[k]] = fmt.Errorf("kvstore: put snapshot %d/%d at revision %d: %w", w.CompanyID, w.ID, w.Rev, conflict(err))
		}
	}
	return errs
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
