package poller_test

import (
	"fmt"
	"testing"

	"github.com/incasso-io/incasso/internal/poller"
)

func loads(t *testing.T, members []string, weights [poller.Partitions]int, a map[int]string) map[string]int {
	t.Helper()
	if len(a) != poller.Partitions {
		t.Fatalf("%d partitions assigned, want %d", len(a), poller.Partitions)
	}
	out := map[string]int{}
	for _, m := range members {
		out[m] = 0
	}
	for p, m := range a {
		if _, ok := out[m]; !ok {
			t.Fatalf("partition %d assigned to %q, not a member", p, m)
		}
		out[m] += weights[p]
	}
	return out
}

func spread(l map[string]int) float64 {
	lo, hi := -1, 0
	for _, v := range l {
		if lo < 0 || v < lo {
			lo = v
		}
		hi = max(hi, v)
	}
	if lo == 0 {
		return float64(hi)
	}
	return float64(hi) / float64(lo)
}

func weightsOf(companies []int64) [poller.Partitions]int {
	var w [poller.Partitions]int
	for _, c := range companies {
		w[poller.PartitionOf(c)]++
	}
	return w
}

func ids(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = 1_000_000 + int64(i)*7
	}
	return out
}

// Assign balances companies, not partitions, and moves only what it must.
func TestAssign(t *testing.T) {
	for _, tc := range []struct {
		name      string
		companies int
		members   []string
		held      func(members []string) map[int]string
		maxSpread float64
		maxMoved  int // partitions whose holder changes (-1: any)
	}{
		{"cold start, 3 replicas, 1,000 companies", 1000, []string{"a", "b", "c"}, nil, 1.1, -1},
		{"cold start, 3 replicas, 60 companies", 60, []string{"a", "b", "c"}, nil, 1.25, -1},
		{"10,000 companies: within one partition of even", 10000, []string{"a", "b", "c"}, nil, 1.05, -1},
		{"a replica joins: it takes its share from the others", 1000, []string{"a", "b", "c"},
			func([]string) map[int]string {
				h := map[int]string{}
				for p := range poller.Partitions {
					h[p] = []string{"a", "b"}[p%2]
				}
				return h
			}, 1.1, 30},
		{"a replica is gone: only its partitions move", 1000, []string{"a", "b"},
			func([]string) map[int]string {
				h := map[int]string{}
				for p := range poller.Partitions {
					h[p] = []string{"a", "b", "dead"}[p%3]
				}
				return h
			}, 1.1, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := weightsOf(ids(tc.companies))
			held := map[int]string{}
			if tc.held != nil {
				held = tc.held(tc.members)
			}
			a := poller.Assign(tc.members, w, held)
			l := loads(t, tc.members, w, a)
			if s := spread(l); s > tc.maxSpread {
				t.Errorf("loads %v: max/min %.3f > %.2f", l, s, tc.maxSpread)
			}
			moved := 0
			for p, h := range held {
				if a[p] != h {
					moved++
				}
			}
			if tc.maxMoved >= 0 && moved > tc.maxMoved {
				t.Errorf("%d partitions moved, want ≤ %d", moved, tc.maxMoved)
			}
			// Deterministic: the same view gives the same answer, whatever
			// the order of members.
			rev := append([]string(nil), tc.members...)
			for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
				rev[i], rev[j] = rev[j], rev[i]
			}
			if b := poller.Assign(rev, w, held); fmt.Sprint(b) != fmt.Sprint(a) {
				t.Error("the assignment depends on the order of members")
			}
			// Stable: applied again to its own result, nothing moves.
			if again := poller.Assign(tc.members, w, a); fmt.Sprint(again) != fmt.Sprint(a) {
				t.Error("the assignment is not a fixed point")
			}
		})
	}
}

// One round's assignment for 10,000 companies over 3 replicas, from a
// settled state (what every replica computes every TTL/3) and from
// nothing (a cold start).
func BenchmarkAssign(b *testing.B) {
	w := weightsOf(ids(10000))
	members := []string{"a", "b", "c"}
	settled := poller.Assign(members, w, nil)
	b.Run("settled", func(b *testing.B) {
		for b.Loop() {
			poller.Assign(members, w, settled)
		}
	})
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			poller.Assign(members, w, nil)
		}
	})
}
