package poller_test

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/memstore"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// watchSource is a company with no documents whose every request lasts a
// little, and which records any moment two replicas read it at once.
type watchSource struct {
	mu      sync.Mutex
	active  map[int64]int
	scans   map[int64]int
	overlap []string
}

func (s *watchSource) enter(cid int64) {
	s.mu.Lock()
	s.active[cid]++
	if s.active[cid] > 1 {
		s.overlap = append(s.overlap, fmt.Sprint(cid))
	}
	s.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock()
	s.active[cid]--
	s.mu.Unlock()
}

func (s *watchSource) Pages(_ context.Context, cid int64, kind rcv.Kind) iter.Seq2[rcv.Page, error] {
	return func(yield func(rcv.Page, error) bool) {
		s.enter(cid)
		if kind == rcv.KindInvoice {
			s.mu.Lock()
			s.scans[cid]++
			s.mu.Unlock()
		}
		yield(rcv.Page{Number: 1, LastPage: 1}, nil)
	}
}
func (s *watchSource) Invoice(context.Context, int64, int64) (rcv.Invoice, error) {
	return rcv.Invoice{}, rcv.ErrNotFound
}
func (s *watchSource) Bin(context.Context, int64) ([]int64, error) { return nil, nil }

// crashable is a membership whose replica can die without a word: no
// release, no leave, no more heartbeats (what SIGKILL leaves behind).
type crashable struct {
	*kvstore.Partitions
	mu   sync.Mutex
	dead bool
}

func (c *crashable) crash() { c.mu.Lock(); c.dead = true; c.mu.Unlock() }
func (c *crashable) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}
func (c *crashable) Heartbeat(ctx context.Context) error {
	if c.isDead() {
		return context.Canceled
	}
	return c.Partitions.Heartbeat(ctx)
}
func (c *crashable) Release(ctx context.Context, p int, h poller.Holding) error {
	if c.isDead() {
		return nil
	}
	return c.Partitions.Release(ctx, p, h)
}
func (c *crashable) Leave(ctx context.Context) error {
	if c.isDead() {
		return nil
	}
	return c.Partitions.Leave(ctx)
}

// Companies are shared evenly by the live replicas; a joining replica
// takes its share, a leaving one's and a dead one's go to the others, and
// no company is ever read by two replicas at once.
func TestReplicasShareCompanies(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	src := &watchSource{active: map[int64]int{}, scans: map[int64]int{}}
	const n = 90
	var comps []poller.Company
	for _, id := range ids(n) {
		comps = append(comps, poller.Company{ID: id, Source: src})
	}
	const ttl = 3 * time.Second
	var logs syncBuffer
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	type replica struct {
		r      *poller.Runner
		m      *crashable
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(name string) *replica {
		ctx, cancel := context.WithCancel(context.Background())
		parts, err := kvstore.NewPartitions(ctx, js, name, ttl, kvstore.BucketConfig{})
		if err != nil {
			t.Fatal(err)
		}
		m := &crashable{Partitions: parts}
		p := &poller.Poller{Snapshots: &memstore.Snapshots{}, Publisher: &countPublisher{}}
		r := &poller.Runner{Poller: p, Members: m, MaxConcurrentScans: 8, Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", name),
			Budget:    poller.Budget{MinInterval: 300 * time.Millisecond, MaxInterval: 300 * time.Millisecond},
			Companies: func(context.Context) ([]poller.Company, error) { return comps, nil }}
		rep := &replica{r: r, m: m, cancel: cancel, done: make(chan struct{})}
		go func() { defer close(rep.done); _ = r.Run(ctx) }()
		return rep
	}
	stop := func(r *replica) { r.cancel(); <-r.done }

	// Sampled all along: a company never held by two replicas at once.
	var mu sync.Mutex
	live := map[string]*replica{}
	var twice []string
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-sampling:
				return
			case <-time.After(10 * time.Millisecond):
			}
			seen := map[int64]string{}
			mu.Lock()
			for name, r := range live {
				for _, id := range r.r.Owned() {
					if o, ok := seen[id]; ok {
						twice = append(twice, fmt.Sprintf("%d by %s and %s", id, o, name))
						logs.Write([]byte(fmt.Sprintf("TWICE %d p%d by %s and %s\n", id, poller.PartitionOf(id), o, name)))
					}
					seen[id] = name
				}
			}
			mu.Unlock()
		}
	}()
	add := func(name string) {
		r := start(name)
		mu.Lock()
		live[name] = r
		mu.Unlock()
	}
	remove := func(name string) *replica {
		mu.Lock()
		defer mu.Unlock()
		r := live[name]
		delete(live, name)
		return r
	}
	balanced := func(what string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			mu.Lock()
			shares := map[string]int{}
			total := 0
			for name, r := range live {
				shares[name] = len(r.r.Owned())
				total += shares[name]
			}
			mu.Unlock()
			lo, hi := n, 0
			for _, s := range shares {
				lo, hi = min(lo, s), max(hi, s)
			}
			if total == n && lo > 0 && float64(hi)/float64(lo) <= 1.25 {
				t.Logf("%s: shares %v", what, shares)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: shares %v (%d of %d companies held) after %v", what, shares, total, n, within)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	add("a")
	add("b")
	add("c")
	balanced("three replicas", 10*time.Second)

	stop(remove("c")) // a clean stop releases at once
	balanced("c left", 5*time.Second)

	add("d")
	balanced("d joined", 10*time.Second)

	a := remove("a")
	a.m.crash() // no release, no leave: its membership must expire
	a.cancel()
	<-a.done
	killed := time.Now()
	balanced("a died", ttl+5*time.Second)
	t.Logf("a's companies taken over %v after it died (TTL %v)", time.Since(killed).Round(100*time.Millisecond), ttl)

	// Every company keeps being scanned.
	src.mu.Lock()
	before := maps(src.scans)
	src.mu.Unlock()
	time.Sleep(time.Second)
	src.mu.Lock()
	for _, id := range ids(n) {
		if src.scans[id] <= before[id] {
			t.Errorf("company %d not scanned in the last second", id)
			break
		}
	}
	src.mu.Unlock()

	close(sampling)
	<-sampled
	for _, r := range []string{"b", "d"} {
		stop(remove(r))
	}
	if len(twice) > 0 {
		t.Errorf("held by two replicas at once: %v", twice[:min(5, len(twice))])
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.overlap) > 0 {
		slices.Sort(src.overlap)
		t.Errorf("read by two replicas at once: %v", slices.Compact(src.overlap))
	}
}

func maps(m map[int64]int) map[int64]int {
	out := make(map[int64]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}
