package dunning

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotYet: an earlier event of the same document is not applied yet; the
// caller hands the event back to be applied after it.
var ErrNotYet = errors.New("dunning: an earlier event of this document is not applied yet")

// Order records, per document, the sequence number (ce-docseq) of the last
// event applied (see kvstore.Order). It is what keeps one invoice's events
// in order when several replicas share the events: whichever replica
// receives an event, it is applied only after its predecessor.
type Order interface {
	Applied(ctx context.Context, cid, doc int64) (uint64, error)
	MarkApplied(ctx context.Context, cid, doc int64, seq uint64) error
}

// InOrder applies the event numbered seq of document doc of company cid
// (apply), in sequence order:
//
//   - seq 0 (an event numbered before sequences existed) is applied as is;
//   - a seq already applied is a redelivery: skipped, nothing applied;
//   - the next seq is applied, then recorded;
//   - a later seq returns ErrNotYet, unless lastChance (the predecessor
//     never came: it left the stream, or was given up on), when it is
//     applied anyway. A document with no record whose seq is not 1 was
//     seen before this record existed: known reports whether dunning
//     already knows it (it has a case), and then it is applied.
//
// It reports whether apply ran.
func InOrder(ctx context.Context, o Order, cid, doc int64, seq uint64, lastChance bool, known func(context.Context) (bool, error), apply func() error) (bool, error) {
	if o == nil || seq == 0 {
		return true, apply()
	}
	last, err := o.Applied(ctx, cid, doc)
	if err != nil {
		return false, err
	}
	switch {
	case seq <= last:
		return false, nil
	case seq == last+1 || lastChance:
	case last == 0:
		ok, err := known(ctx)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("%w (document %d/%d: event %d, none applied)", ErrNotYet, cid, doc, seq)
		}
	default:
		return false, fmt.Errorf("%w (document %d/%d: event %d, last applied %d)", ErrNotYet, cid, doc, seq, last)
	}
	if err := apply(); err != nil {
		return true, err
	}
	return true, o.MarkApplied(ctx, cid, doc, seq)
}
