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
	"golang.org/x/sync/errgroup"

	"github.com/incasso-io/incasso/internal/jsbatch"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// SnapshotsBucket is the KV bucket of document snapshots.
const SnapshotsBucket = "incasso_snapshots"

// Snapshots stores one snapshot per document under <company_id>.<document_id>.
//
// A deleted document keeps a tombstone: a KV delete marker whose body is
// the last snapshot (with Deleted set and its transition sequence number),
// so that a document restored from FIC's bin goes on numbering its
// transitions instead of reusing the ids of its first life. Delete markers
// are invisible to key listings, so scans do not see tombstones as stored
// documents.
type Snapshots struct {
	KV     jetstream.KeyValue
	js     jetstream.JetStream
	stream jetstream.Stream
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
	st, err := js.Stream(ctx, "KV_"+SnapshotsBucket)
	if err != nil {
		return nil, fmt.Errorf("kvstore: stream of bucket %s: %w", SnapshotsBucket, err)
	}
	return &Snapshots{KV: kv, js: js, stream: st}, nil
}

// kvOperation is the header KV writes name their operation with.
const kvOperation = "KV-Operation"

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

// Get implements receivables.SnapshotStore. A tombstone is returned as a
// snapshot with Deleted set and the marker's revision; a purge marker left
// by an earlier version (no body) is a tombstone with sequence number 0.
func (s *Snapshots) Get(ctx context.Context, cid, id int64) (rcv.Snapshot, uint64, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, putPrefix+snapKey(cid, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return rcv.Snapshot{}, 0, nil
	}
	if err != nil {
		return rcv.Snapshot{}, 0, fmt.Errorf("kvstore: get snapshot %d/%d: %w", cid, id, err)
	}
	var snap rcv.Snapshot
	op := m.Header.Get(kvOperation)
	if op != "" && len(m.Data) == 0 {
		return rcv.Snapshot{Deleted: true}, m.Sequence, nil
	}
	if err := json.Unmarshal(m.Data, &snap); err != nil {
		return rcv.Snapshot{}, 0, fmt.Errorf("kvstore: snapshot %d/%d is corrupt: %w", cid, id, err)
	}
	if op != "" {
		snap.Deleted = true
	}
	return snap, m.Sequence, nil
}

// Put implements receivables.SnapshotStore. Revision 0 means "no message
// at all for the key": a tombstone has a revision, which Get returned.
func (s *Snapshots) Put(ctx context.Context, cid, id int64, snap rcv.Snapshot, rev uint64) (uint64, error) {
	b, err := json.Marshal(snap)
	if err != nil {
		return 0, fmt.Errorf("kvstore: encode snapshot %d/%d: %w", cid, id, err)
	}
	ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: putPrefix + snapKey(cid, id), Data: b},
		jetstream.WithExpectLastSequencePerSubject(rev))
	if err != nil {
		return 0, fmt.Errorf("kvstore: put snapshot %d/%d at revision %d: %w", cid, id, rev, conflict(err))
	}
	return ack.Sequence, nil
}

// PutAll implements receivables.SnapshotStore. Each write is what
// KeyValue.Update and Create publish — the key's subject with the expected
// last revision — but the whole batch goes out asynchronously and the acks
// are awaited together. A create over a tombstone (a deleted document that
// came back) reports a conflict: the caller re-reads it and retries.
func (s *Snapshots) PutAll(ctx context.Context, writes []rcv.SnapshotWrite) ([]uint64, []error) {
	errs := make([]error, len(writes))
	revs := make([]uint64, len(writes))
	batch := make([]jsbatch.Pub, 0, len(writes))
	index := make([]int, 0, len(writes))
	for i, w := range writes {
		b, err := json.Marshal(w.Snapshot)
		if err != nil {
			errs[i] = fmt.Errorf("kvstore: encode snapshot %d/%d: %w", w.CompanyID, w.ID, err)
			continue
		}
		batch = append(batch, jsbatch.Pub{Msg: &nats.Msg{Subject: putPrefix + snapKey(w.CompanyID, w.ID), Header: nats.Header{}, Data: b},
			Opts: []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(w.Rev)}})
		index = append(index, i)
	}
	acks, perrs := jsbatch.PublishAll(ctx, s.js, batch)
	for k, err := range perrs {
		if err != nil {
			w := writes[index[k]]
			errs[index[k]] = fmt.Errorf("kvstore: put snapshot %d/%d at revision %d: %w", w.CompanyID, w.ID, w.Rev, conflict(err))
			continue
		}
		revs[index[k]] = acks[k].Sequence
	}
	return revs, errs
}

// Delete implements receivables.SnapshotStore: the snapshot becomes a
// tombstone (a KV delete marker carrying snap), if the stored revision is
// still rev.
func (s *Snapshots) Delete(ctx context.Context, cid, id int64, snap rcv.Snapshot, rev uint64) error {
	snap.Deleted, snap.Pending = true, nil
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("kvstore: encode tombstone %d/%d: %w", cid, id, err)
	}
	m := &nats.Msg{Subject: putPrefix + snapKey(cid, id), Header: nats.Header{kvOperation: []string{"DEL"}}, Data: b}
	if _, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(rev)); err != nil {
		return fmt.Errorf("kvstore: delete snapshot %d/%d: %w", cid, id, conflict(err))
	}
	return nil
}

// IDs implements receivables.SnapshotStore.
func (s *Snapshots) IDs(ctx context.Context, cid int64) ([]int64, error) {
	prefix := strconv.FormatInt(cid, 10) + "."
	keys, err := listKeys(ctx, s.KV, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("kvstore: list snapshots of %d: %w", cid, err)
	}
	var ids []int64
	for _, k := range keys {
		id, err := strconv.ParseInt(strings.TrimPrefix(k, prefix), 10, 64)
		if err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

var errConflictSentinel = rcv.ErrConflict

// Documents returns the live documents of a company as last seen
// (tombstones left out): the ledger dunning's reports count.
func (s *Snapshots) Documents(ctx context.Context, cid int64) ([]rcv.Invoice, error) {
	ids, err := s.IDs(ctx, cid)
	if err != nil {
		return nil, err
	}
	out := make([]rcv.Invoice, len(ids))
	keep := make([]bool, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, id := range ids {
		g.Go(func() error {
			snap, rev, err := s.Get(gctx, cid, id)
			if err != nil {
				return err
			}
			out[i], keep[i] = snap.Invoice, rev > 0 && !snap.Deleted
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	live := out[:0]
	for i := range out {
		if keep[i] {
			live = append(live, out[i])
		}
	}
	return live, nil
}
