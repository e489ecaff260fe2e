package dunning_test

import (
	"context"
	"errors"
	"testing"

	"github.com/incasso-io/incasso/internal/dunning"
)

// mapOrder is one document's record in memory.
type mapOrder struct{ st dunning.Applying }

func (m *mapOrder) State(context.Context, int64, int64) (dunning.Applying, error) { return m.st, nil }
func (m *mapOrder) Begin(_ context.Context, _, _ int64, seq, rev uint64) (uint64, error) {
	if rev != m.st.Rev {
		return 0, dunning.ErrOrderConflict
	}
	m.st = dunning.Applying{Seq: seq, Rev: m.st.Rev + 1}
	return m.st.Rev, nil
}
func (m *mapOrder) Done(_ context.Context, _, _ int64, seq, rev uint64) error {
	if rev != m.st.Rev {
		return dunning.ErrOrderConflict
	}
	m.st = dunning.Applying{Seq: seq, Done: true, Rev: m.st.Rev + 1}
	return nil
}

func TestInOrder(t *testing.T) {
	yes := func(context.Context) (bool, error) { return true, nil }
	no := func(context.Context) (bool, error) { return false, nil }
	done := func(seq uint64) dunning.Applying { return dunning.Applying{Seq: seq, Done: true, Rev: 7} }
	begun := func(seq uint64) dunning.Applying { return dunning.Applying{Seq: seq, Rev: 7} }
	for _, tc := range []struct {
		name       string
		st         dunning.Applying
		seq        uint64
		lastChance bool
		known      func(context.Context) (bool, error)
		applied    bool
		err        error
		after      uint64 // the record's seq afterwards, done
	}{
		{"the next event is applied and recorded", done(2), 3, false, no, true, nil, 3},
		{"the first event of a document", dunning.Applying{}, 1, false, no, true, nil, 1},
		{"a redelivery of an applied event is skipped", done(3), 3, false, no, false, nil, 3},
		{"an older event is skipped", done(3), 1, false, no, false, nil, 3},
		{"an event before its predecessor waits", done(2), 4, false, no, false, dunning.ErrNotYet, 2},
		{"the next event waits while its predecessor is being applied", begun(2), 3, false, yes, false, dunning.ErrNotYet, 2},
		{"an event begun and never done is applied again", begun(3), 3, false, no, true, nil, 3},
		{"on its last delivery it is applied anyway", done(2), 4, true, no, true, nil, 4},
		{"no record, not the first, unknown document: waits", dunning.Applying{}, 3, false, no, false, dunning.ErrNotYet, 0},
		{"no record, not the first, a case exists (seen before records): applied", dunning.Applying{}, 3, false, yes, true, nil, 3},
		{"not numbered (before sequences): applied, nothing recorded", done(5), 0, false, no, true, nil, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &mapOrder{st: tc.st}
			ran := false
			applied, err := dunning.InOrder(context.Background(), o, 1, 7, tc.seq, tc.lastChance, tc.known, func() error { ran = true; return nil })
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if applied != tc.applied || ran != tc.applied {
				t.Errorf("applied %v (ran %v), want %v", applied, ran, tc.applied)
			}
			if o.st.Seq != tc.after || (tc.applied && !o.st.Done) {
				t.Errorf("record %+v, want %d done", o.st, tc.after)
			}
		})
	}
	// Applying fails: the event stays begun, not done; its successor waits
	// and its redelivery applies it again.
	o := &mapOrder{st: done(1)}
	if _, err := dunning.InOrder(context.Background(), o, 1, 7, 2, false, no, func() error { return errors.New("SMTP down") }); err == nil {
		t.Fatal("the failure is not returned")
	}
	if _, err := dunning.InOrder(context.Background(), o, 1, 7, 3, false, no, func() error { return nil }); !errors.Is(err, dunning.ErrNotYet) {
		t.Errorf("the successor of a failed event: %v, want ErrNotYet", err)
	}
	if applied, err := dunning.InOrder(context.Background(), o, 1, 7, 2, false, no, func() error { return nil }); !applied || err != nil || !o.st.Done {
		t.Errorf("the redelivery: applied %v, %v, record %+v", applied, err, o.st)
	}
}
