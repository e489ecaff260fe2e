package dunning_test

import (
	"context"
	"errors"
	"testing"

	"github.com/incasso-io/incasso/internal/dunning"
)

type mapOrder map[int64]uint64

func (m mapOrder) Applied(_ context.Context, _, doc int64) (uint64, error) { return m[doc], nil }
func (m mapOrder) MarkApplied(_ context.Context, _, doc int64, seq uint64) error {
	m[doc] = max(m[doc], seq)
	return nil
}

func TestInOrder(t *testing.T) {
	yes := func(context.Context) (bool, error) { return true, nil }
	no := func(context.Context) (bool, error) { return false, nil }
	for _, tc := range []struct {
		name       string
		last, seq  uint64
		lastChance bool
		known      func(context.Context) (bool, error)
		applied    bool
		err        error
		after      uint64
	}{
		{"the next event is applied and recorded", 2, 3, false, no, true, nil, 3},
		{"the first event of a document", 0, 1, false, no, true, nil, 1},
		{"a redelivery of an applied event is skipped", 3, 3, false, no, false, nil, 3},
		{"an older event is skipped", 3, 1, false, no, false, nil, 3},
		{"an event before its predecessor waits", 2, 4, false, no, false, dunning.ErrNotYet, 2},
		{"on its last delivery it is applied anyway", 2, 4, true, no, true, nil, 4},
		{"no record, not the first, unknown document: waits", 0, 3, false, no, false, dunning.ErrNotYet, 0},
		{"no record, not the first, a case exists (seen before records): applied", 0, 3, false, yes, true, nil, 3},
		{"not numbered (before sequences): applied, nothing recorded", 5, 0, false, no, true, nil, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := mapOrder{7: tc.last}
			ran := false
			applied, err := dunning.InOrder(context.Background(), o, 1, 7, tc.seq, tc.lastChance, tc.known, func() error { ran = true; return nil })
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if applied != tc.applied || ran != tc.applied {
				t.Errorf("applied %v (ran %v), want %v", applied, ran, tc.applied)
			}
			if o[7] != tc.after {
				t.Errorf("recorded %d, want %d", o[7], tc.after)
			}
		})
	}
}
