package dunning

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotYet: an earlier event of the same document is not applied yet; the
// caller hands the event back to be applied after it.
var ErrNotYet = errors.New("dunning: an earlier event of this document is not applied yet")

// ErrOrderConflict: the document's record changed since it was read (an
// Order implementation returns it from Begin and Done).
var ErrOrderConflict = errors.New("dunning: the document's order record changed")

// Applying is the state of a document's order record: Seq is the last
// event begun; Done whether it was applied to the end; Rev the record's
// revision (0: no record).
type Applying struct {
	Seq  uint64
	Done bool
	Rev  uint64
}

// Order records, per document, which event (ce-docseq) is being or was
// last applied (see kvstore.Order). It is what keeps one invoice's events
// in order when several replicas share the events: whichever replica
// receives an event, it is applied only after its predecessor has been
// applied to the end.
type Order interface {
	State(ctx context.Context, cid, doc int64) (Applying, error)
	// Begin records that seq is being applied, if the record is still at
	// rev (0: none); else ErrOrderConflict.
	Begin(ctx context.Context, cid, doc int64, seq, rev uint64) (uint64, error)
	// Done records that seq was applied, if the record is still at rev.
	Done(ctx context.Context, cid, doc int64, seq, rev uint64) error
}

// InOrder applies the event numbered seq of document doc of company cid
// (apply), in sequence order:
//
//   - seq 0 (an event numbered before sequences existed) is applied as is;
//   - a seq already applied is a redelivery: skipped;
//   - the next seq, once its predecessor is done, is begun (compare-and-set
//     on the record read, so that two replicas cannot both begin), applied,
//     and marked done; a seq begun and not done (its replica died, or
//     apply failed) is applied again by its redelivery;
//   - a later seq, or the next one while its predecessor is still being
//     applied, returns ErrNotYet, unless lastChance (the predecessor never
//     came: it left the stream, or was given up on), when it is applied
//     anyway;
//   - a document with no record whose seq is not 1 was seen before records
//     existed if dunning already knows it (known: it has a case), and is
//     then applied; else it waits like any later seq.
//
// It reports whether apply ran.
func InOrder(ctx context.Context, o Order, cid, doc int64, seq uint64, lastChance bool, known func(context.Context) (bool, error), apply func() error) (bool, error) {
	if o == nil || seq == 0 {
		return true, apply()
	}
	st, err := o.State(ctx, cid, doc)
	if err != nil {
		return false, err
	}
	notYet := func() error {
		return fmt.Errorf("%w (document %d/%d: event %d; event %d begun, done %v)", ErrNotYet, cid, doc, seq, st.Seq, st.Done)
	}
	switch {
	case seq < st.Seq || (seq == st.Seq && st.Done):
		return false, nil
	case seq == st.Seq: // begun, never done: applied again
	case lastChance:
	case seq == st.Seq+1 && (st.Done || st.Rev == 0):
	case st.Rev == 0:
		ok, err := known(ctx)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, notYet()
		}
	default:
		return false, notYet()
	}
	rev, err := o.Begin(ctx, cid, doc, seq, st.Rev)
	if errors.Is(err, ErrOrderConflict) {
		return false, notYet() // another replica moved it meanwhile: look again
	}
	if err != nil {
		return false, err
	}
	if err := apply(); err != nil {
		return true, err
	}
	if err := o.Done(ctx, cid, doc, seq, rev); err != nil && !errors.Is(err, ErrOrderConflict) {
		return true, err
	}
	return true, nil
}
