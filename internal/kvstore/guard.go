package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/jsbatch"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// HoldsBucket keeps the deletions the poller's guard holds, per company.
const HoldsBucket = "incasso_deletion_holds"

// Holds implements receivables.HoldStore.
type Holds struct{ KV jetstream.KeyValue }

var _ rcv.HoldStore = (*Holds)(nil)

// NewHolds creates (or opens) the bucket.
func NewHolds(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Holds, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: HoldsBucket, Description: "deletions held by the poller's guard until confirmed",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", HoldsBucket, err)
	}
	return &Holds{KV: kv}, nil
}

// Get implements receivables.HoldStore.
func (h *Holds) Get(ctx context.Context, cid int64) (rcv.DeletionHold, uint64, error) {
	e, err := h.KV.Get(ctx, strconv.FormatInt(cid, 10))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rcv.DeletionHold{}, 0, nil
	}
	if err != nil {
		return rcv.DeletionHold{}, 0, fmt.Errorf("kvstore: hold of %d: %w", cid, err)
	}
	var d rcv.DeletionHold
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return d, 0, fmt.Errorf("kvstore: hold of %d is corrupt: %w", cid, err)
	}
	return d, e.Revision(), nil
}

// Put implements receivables.HoldStore.
func (h *Holds) Put(ctx context.Context, cid int64, d rcv.DeletionHold, rev uint64) (uint64, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return 0, err
	}
	key := strconv.FormatInt(cid, 10)
	var nrev uint64
	if rev == 0 {
		nrev, err = h.KV.Create(ctx, key, b)
	} else {
		nrev, err = h.KV.Update(ctx, key, b, rev)
	}
	if err != nil {
		return 0, fmt.Errorf("kvstore: put hold of %d: %w", cid, conflict(err))
	}
	return nrev, nil
}

// Delete implements receivables.HoldStore.
func (h *Holds) Delete(ctx context.Context, cid int64, rev uint64) error {
	if err := h.KV.Purge(ctx, strconv.FormatInt(cid, 10), jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("kvstore: delete hold of %d: %w", cid, conflict(err))
	}
	return nil
}

// List implements receivables.HoldStore.
func (h *Holds) List(ctx context.Context) (map[int64]rcv.DeletionHold, error) {
	out := map[int64]rcv.DeletionHold{}
	keys, err := listKeys(ctx, h.KV)
	if err != nil {
		return nil, fmt.Errorf("kvstore: list holds: %w", err)
	}
	for _, k := range keys {
		cid, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			continue
		}
		d, rev, err := h.Get(ctx, cid)
		if err != nil {
			return nil, err
		}
		if rev > 0 {
			out[cid] = d
		}
	}
	return out, nil
}

// OwnersBucket maps every FIC document id Incasso has seen to its company.
const OwnersBucket = "incasso_document_owners"

// Owners implements receivables.Owners: key <document_id>, value the
// company id, written once (create) and never changed.
type Owners struct {
	KV jetstream.KeyValue
	js jetstream.JetStream
}

var _ rcv.Owners = (*Owners)(nil)

// NewOwners creates (or opens) the bucket.
func NewOwners(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Owners, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: OwnersBucket, Description: "the company of every FIC document id seen",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", OwnersBucket, err)
	}
	return &Owners{KV: kv, js: js}, nil
}

const ownersPrefix = "$KV." + OwnersBucket + "."

// Claim implements receivables.Owners: the creates go out as one batch;
// an id already claimed is read back.
func (o *Owners) Claim(ctx context.Context, cid int64, ids []int64) ([]int64, error) {
	owners := make([]int64, len(ids))
	batch := make([]jsbatch.Pub, len(ids))
	val := []byte(strconv.FormatInt(cid, 10))
	for i, id := range ids {
		batch[i] = jsbatch.Pub{Msg: &nats.Msg{Subject: ownersPrefix + strconv.FormatInt(id, 10), Data: val},
			Opts: []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(0)}}
	}
	_, errs := jsbatch.PublishAll(ctx, o.js, batch)
	for i, err := range errs {
		switch {
		case err == nil:
			owners[i] = cid
		case errors.Is(conflict(err), rcv.ErrConflict):
			e, gerr := o.KV.Get(ctx, strconv.FormatInt(ids[i], 10))
			if gerr != nil {
				return nil, fmt.Errorf("kvstore: owner of %d: %w", ids[i], gerr)
			}
			owner, perr := strconv.ParseInt(string(e.Value()), 10, 64)
			if perr != nil {
				return nil, fmt.Errorf("kvstore: owner of %d is corrupt: %q", ids[i], e.Value())
			}
			owners[i] = owner
		default:
			return nil, fmt.Errorf("kvstore: claim %d: %w", ids[i], err)
		}
	}
	return owners, nil
}

// BatchesBucket marks the batches of pending transitions that are
// published (see receivables.Snapshot.Batch).
const BatchesBucket = "incasso_published_batches"

// batchRetention is how long a mark is kept: far longer than any look at
// a document takes to come (scans run at least every POLLER_MAX_INTERVAL,
// 24 h by default), so that a pending transition whose mark expired can
// only be one that was published.
const batchRetention = 30 * 24 * time.Hour

// Batches implements receivables.Batches.
type Batches struct{ KV jetstream.KeyValue }

var _ rcv.Batches = (*Batches)(nil)

// NewBatches creates (or opens) the bucket.
func NewBatches(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Batches, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BatchesBucket, Description: "batches of transitions known to be published",
		History: 1, TTL: batchRetention, Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: bucket %s: %w", BatchesBucket, err)
	}
	return &Batches{KV: kv}, nil
}

// MarkPublished implements receivables.Batches.
func (b *Batches) MarkPublished(ctx context.Context, batch string) error {
	if _, err := b.KV.Put(ctx, batch, []byte{'1'}); err != nil {
		return fmt.Errorf("kvstore: mark batch %s published: %w", batch, err)
	}
	return nil
}

// Published implements receivables.Batches.
func (b *Batches) Published(ctx context.Context, batch string) (bool, error) {
	_, err := b.KV.Get(ctx, batch)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kvstore: batch %s: %w", batch, err)
	}
	return true, nil
}

// Retention implements receivables.Batches.
func (b *Batches) Retention() time.Duration { return batchRetention }
