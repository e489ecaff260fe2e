package kvstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/dunning"
)

// OrderBucket holds, per document, the event (ce-docseq) dunning is
// applying or applied last: "<seq>~" while it is applied, "<seq>" once
// done.
const OrderBucket = "incasso_dunning_order"

// Order is dunning.Order on KV: one key per document, moved by
// compare-and-set.
type Order struct{ kv jetstream.KeyValue }

var _ dunning.Order = (*Order)(nil)

// NewOrder opens (or creates) the bucket.
func NewOrder(ctx context.Context, js jetstream.JetStream, c BucketConfig) (*Order, error) {
	kv, err := bucket(ctx, js, OrderBucket, "per document, the event dunning applies or applied last (ce-docseq)", c)
	if err != nil {
		return nil, err
	}
	return &Order{kv: kv}, nil
}

func orderKey(cid, doc int64) string {
	return strconv.FormatInt(cid, 10) + "." + strconv.FormatInt(doc, 10)
}

// State returns the document's record (Rev 0: none).
func (o *Order) State(ctx context.Context, cid, doc int64) (dunning.Applying, error) {
	e, err := o.kv.Get(ctx, orderKey(cid, doc))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return dunning.Applying{}, nil
	}
	if err != nil {
		return dunning.Applying{}, fmt.Errorf("kvstore: order of %d/%d: %w", cid, doc, err)
	}
	v, applying := strings.CutSuffix(string(e.Value()), "~")
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return dunning.Applying{}, fmt.Errorf("kvstore: order of %d/%d: %w", cid, doc, err)
	}
	return dunning.Applying{Seq: seq, Done: !applying, Rev: e.Revision()}, nil
}

// Begin records seq as being applied, from revision rev (0: no record).
func (o *Order) Begin(ctx context.Context, cid, doc int64, seq, rev uint64) (uint64, error) {
	return o.write(ctx, cid, doc, strconv.FormatUint(seq, 10)+"~", rev)
}

// Done records seq as applied, from revision rev.
func (o *Order) Done(ctx context.Context, cid, doc int64, seq, rev uint64) error {
	_, err := o.write(ctx, cid, doc, strconv.FormatUint(seq, 10), rev)
	return err
}

func (o *Order) write(ctx context.Context, cid, doc int64, v string, rev uint64) (uint64, error) {
	var nrev uint64
	var err error
	if rev == 0 {
		nrev, err = o.kv.Create(ctx, orderKey(cid, doc), []byte(v))
	} else {
		nrev, err = o.kv.Update(ctx, orderKey(cid, doc), []byte(v), rev)
	}
	if err != nil {
		if errors.Is(conflict(err), errConflictSentinel) {
			return 0, fmt.Errorf("%w: %d/%d", dunning.ErrOrderConflict, cid, doc)
		}
		return 0, fmt.Errorf("kvstore: order of %d/%d: %w", cid, doc, err)
	}
	return nrev, nil
}
