package kvstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/dunning"
)

// OrderBucket holds, per document, the sequence number of the last event
// dunning applied.
const OrderBucket = "incasso_dunning_order"

// Order is dunning.Order on KV: one key per document, raised by
// compare-and-set and never lowered.
type Order struct{ kv jetstream.KeyValue }

var _ dunning.Order = (*Order)(nil)

// NewOrder opens (or creates) the bucket.
func NewOrder(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Order, error) {
	kv, err := openOrCreate(ctx, js, jetstream.KeyValueConfig{
		Bucket: OrderBucket, Description: "per document, the last event dunning applied (ce-docseq)", History: 1,
		Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas),
	})
	if err != nil {
		return nil, err
	}
	return &Order{kv: kv}, nil
}

func orderKey(cid, doc int64) string {
	return strconv.FormatInt(cid, 10) + "." + strconv.FormatInt(doc, 10)
}

func (o *Order) get(ctx context.Context, cid, doc int64) (uint64, uint64, error) {
	e, err := o.kv.Get(ctx, orderKey(cid, doc))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("kvstore: order of %d/%d: %w", cid, doc, err)
	}
	seq, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("kvstore: order of %d/%d: %w", cid, doc, err)
	}
	return seq, e.Revision(), nil
}

// Applied returns the last sequence number applied (0: none).
func (o *Order) Applied(ctx context.Context, cid, doc int64) (uint64, error) {
	seq, _, err := o.get(ctx, cid, doc)
	return seq, err
}

// MarkApplied raises the record to seq (a lower or equal seq leaves it).
func (o *Order) MarkApplied(ctx context.Context, cid, doc int64, seq uint64) error {
	for range 8 { // a few concurrent raises at most
		last, rev, err := o.get(ctx, cid, doc)
		if err != nil {
			return err
		}
		if seq <= last {
			return nil
		}
		v := []byte(strconv.FormatUint(seq, 10))
		if rev == 0 {
			_, err = o.kv.Create(ctx, orderKey(cid, doc), v)
		} else {
			_, err = o.kv.Update(ctx, orderKey(cid, doc), v, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(conflict(err), errConflictSentinel) {
			return fmt.Errorf("kvstore: order of %d/%d: %w", cid, doc, err)
		}
	}
	return fmt.Errorf("kvstore: order of %d/%d: %w", cid, doc, errConflictSentinel)
}
