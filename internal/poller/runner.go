package poller

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Leaser grants a company to one replica at a time (see kvstore.Leases).
type Leaser interface {
	Acquire(ctx context.Context, cid int64) (uint64, error)
	Renew(ctx context.Context, cid int64, rev uint64) (uint64, error)
	Release(ctx context.Context, cid int64, rev uint64) error
}

// Company is one FIC company the runner reconciles.
type Company struct {
	ID     int64
	Source rcv.InvoiceSource
	// Quota reports what FIC last said about the company's quota (nil: unknown).
	Quota func() QuotaView
}

// Runner reconciles many companies: each company it holds a lease on gets
// a loop that scans it, then waits the interval its quota budget allows
// (or until a quota reset). Leases are renewed every TTL/3; a lost lease
// stops that company's loop at once, and a dead replica's companies are
// picked up by another within one TTL.
type Runner struct {
	Poller    *Poller
	Leases    Leaser // nil: this replica owns every company
	LeaseTTL  time.Duration
	Budget    Budget
	Companies func(ctx context.Context) ([]Company, error)
	Progress  Progress
	OnScan    func(ScanResult, error)
	// MaxConcurrentScans bounds how many companies are scanned at once
	// (default 32): memory stays O(MaxConcurrentScans × page) however many
	// companies a replica holds.
	MaxConcurrentScans int
	Log                *slog.Logger

	mu       sync.Mutex
	owned    map[int64]*held
	stopping map[int64]chan struct{}
	scans    chan struct{}
}

type held struct {
	rev     uint64
	renewed time.Time
	cancel  context.CancelFunc
	done    chan struct{}
}

// Owned returns the companies this replica currently holds.
func (r *Runner) Owned() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int64, 0, len(r.owned))
	for id := range r.owned {
		out = append(out, id)
	}
	return out
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Run blocks until ctx is done, then stops every loop and releases leases.
func (r *Runner) Run(ctx context.Context) error {
	ttl := r.ttl()
	r.mu.Lock()
	r.owned = map[int64]*held{}
	r.stopping = map[int64]chan struct{}{}
	n := r.MaxConcurrentScans
	if n <= 0 {
		n = 32
	}
	r.scans = make(chan struct{}, n)
	r.mu.Unlock()
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for {
		r.round(ctx)
		select {
		case <-ctx.Done():
			r.stopAll()
			return nil
		case <-tick.C:
		}
	}
}

func (r *Runner) round(ctx context.Context) {
	comps, err := r.Companies(ctx)
	if err != nil {
		r.log().Error("cannot list companies", "error", err)
		return
	}
	want := map[int64]Company{}
	for _, c := range comps {
		want[c.ID] = c
	}
	ttl := r.ttl()

	// Renew every held lease concurrently, outside the lock: with many
	// companies a sequential round could outlast the TTL.
	r.mu.Lock()
	var renew []int64
	for id := range r.owned {
		if _, still := want[id]; still && r.Leases != nil {
			renew = append(renew, id)
		}
	}
	r.mu.Unlock()
	type result struct {
		id  int64
		rev uint64
		err error
	}
	results := make(chan result, len(renew))
	var g errgroup.Group // every renewal is tried: errors are results, not failures
	g.SetLimit(32)
	for _, id := range renew {
		r.mu.Lock()
		rev := r.owned[id].rev
		r.mu.Unlock()
		g.Go(func() error {
			nrev, err := r.Leases.Renew(ctx, id, rev)
			results <- result{id, nrev, err}
			return nil
		})
	}
	_ = g.Wait()
	close(results)

	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	stop := func(id int64, h *held) {
		h.cancel()
		delete(r.owned, id)
		r.stopping[id] = h.done
		go func() { <-h.done; r.mu.Lock(); delete(r.stopping, id); r.mu.Unlock() }()
	}
	for res := range results {
		h, ok := r.owned[res.id]
		if !ok {
			continue
		}
		switch {
		case res.err == nil:
			h.rev, h.renewed = res.rev, now
		case errors.Is(res.err, errLeaseLost(r.Leases)) || now.Sub(h.renewed) > ttl:
			r.log().Warn("lease lost; stopping company", "company_id", res.id, "error", res.err)
			stop(res.id, h)
		default:
			// A slow or failed renewal: the lease is still ours until its
			// TTL runs out; try again next round.
			r.log().Warn("lease renewal failed; retrying", "company_id", res.id, "error", res.err)
		}
	}
	for id, h := range r.owned {
		if _, still := want[id]; !still {
			stop(id, h)
		}
	}
	for id, c := range want {
		if _, ok := r.owned[id]; ok {
			continue
		}
		if _, ok := r.stopping[id]; ok {
			continue // its previous loop is still winding down
		}
		var rev uint64
		if r.Leases != nil {
			rev, err = r.Leases.Acquire(ctx, id)
			if err != nil {
				continue // held elsewhere
			}
		}
		cctx, cancel := context.WithCancel(ctx)
		h := &held{rev: rev, cancel: cancel, done: make(chan struct{}), renewed: now}
		r.owned[id] = h
		r.log().Info("company acquired", "company_id", id)
		go func() {
			defer close(h.done)
			r.companyLoop(cctx, c)
		}()
	}
}

func (r *Runner) ttl() time.Duration {
	if r.LeaseTTL <= 0 {
		return 30 * time.Second
	}
	return r.LeaseTTL
}

// errLeaseLost returns the sentinel a Leaser reports for a lost lease, if
// it exposes one.
func errLeaseLost(l Leaser) error {
	if x, ok := l.(interface{ LostError() error }); ok {
		return x.LostError()
	}
	return errNeverMatches
}

var errNeverMatches = errors.New("poller: no lease-lost sentinel")

func (r *Runner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	rel, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, h := range r.owned {
		h.cancel()
	}
	for id, h := range r.owned {
		<-h.done
		if r.Leases != nil {
			if err := r.Leases.Release(rel, id, h.rev); err != nil {
				r.log().Warn("lease not released", "company_id", id, "error", err)
			}
		}
		delete(r.owned, id)
	}
}

func (r *Runner) companyLoop(ctx context.Context, c Company) {
	for {
		select {
		case r.scans <- struct{}{}:
		case <-ctx.Done():
			return
		}
		res, err := r.Poller.Scan(ctx, c.Source, c.ID, r.Progress)
		<-r.scans
		if ctx.Err() != nil {
			return
		}
		if r.OnScan != nil {
			r.OnScan(res, err)
		}
		now := r.Poller.now()
		var wait time.Duration
		var qe *rcv.QuotaError
		switch {
		case errors.As(err, &qe):
			wait = qe.ResetAt.Sub(now) + time.Second
			r.log().Warn("quota exhausted: company paused", "company_id", c.ID, "until", qe.ResetAt.UTC())
		case err != nil:
			wait = r.Budget.withDefaults().MinInterval
			r.log().Error("scan failed; retrying", "company_id", c.ID, "in", wait, "error", err)
		default:
			q := QuotaView{HourlyLimit: -1, MonthlyRemaining: -1, MonthlyLimit: -1}
			if c.Quota != nil {
				q = c.Quota()
			}
			wait = r.Budget.Interval(res.Requests, now, q)
			r.log().Info("scan complete", "company_id", c.ID, "documents", res.Documents, "events", res.Events,
				"pages", res.Pages, "requests", res.Requests, "deleted", res.Deleted, "complete", res.Complete,
				"duration_ms", res.Duration.Milliseconds(), "next_in", wait.Round(time.Second).String())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
