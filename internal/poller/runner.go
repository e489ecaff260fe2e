package poller

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Holding is who holds a partition, at which revision of its record.
type Holding struct {
	Holder string
	Rev    uint64
}

// Membership is how replicas share the partitions (see kvstore.Partitions):
// each live replica renews one record of its own; a partition is held by a
// record naming its holder, written only when it changes hands.
type Membership interface {
	// Self is this replica's name.
	Self() string
	// TTL is how long a replica stays live after its last heartbeat.
	TTL() time.Duration
	// Heartbeat says this replica is live.
	Heartbeat(ctx context.Context) error
	// Members lists the live replicas.
	Members(ctx context.Context) ([]string, error)
	// Holdings returns every held partition.
	Holdings(ctx context.Context) (map[int]Holding, error)
	// Claim takes partition p if it is still as seen (was.Rev 0: free).
	Claim(ctx context.Context, p int, was Holding) (Holding, error)
	// Release gives p up if it is still held as h.
	Release(ctx context.Context, p int, h Holding) error
	// Leave ends this replica's membership (on a clean stop).
	Leave(ctx context.Context) error
}

// Company is one FIC company the runner reconciles.
type Company struct {
	ID     int64
	Source rcv.InvoiceSource
	// Quota reports what FIC last said about the company's quota (nil: unknown).
	Quota func() QuotaView
}

// Runner reconciles many companies. Companies are hashed into Partitions
// partitions; the live replicas share the partitions evenly by their
// companies (Assign), and a replica scans only the companies of the
// partitions it holds. Between two scans a company costs nothing: no
// goroutine, no write, only an entry in the runner's schedule. The
// replicas' only periodic writes are one heartbeat each per TTL/3, however
// many companies there are.
//
// A partition changes hands only when its holder has finished with it: a
// replica giving a partition up first cancels and waits for its scans, then
// releases it; a replica takes a partition only when it is free or its
// holder is no longer live. A replica that cannot renew its heartbeat for
// two thirds of the TTL stops every scan before its membership can expire,
// so two replicas never scan one company at once.
type Runner struct {
	Poller    *Poller
	Members   Membership // nil: this replica holds every partition
	Budget    Budget
	Companies func(ctx context.Context) ([]Company, error)
	Progress  Progress
	OnScan    func(ScanResult, error)
	// MaxConcurrentScans bounds how many companies are scanned at once
	// (default 32): memory stays O(MaxConcurrentScans × page) however many
	// companies a replica holds.
	MaxConcurrentScans int
	Log                *slog.Logger

	lastBeat atomic.Int64 // unix nanoseconds of the last heartbeat that succeeded (when it was sent)

	readyOnce sync.Once
	ready     chan struct{}

	mu    sync.Mutex
	parts map[int]*partState
	sched schedule
	wake  chan struct{}
}

type partState struct {
	comps     map[int64]*compState // its companies (gone ones until their scan ends)
	h         Holding
	ctx       context.Context
	cancel    context.CancelFunc
	running   int
	releasing bool
}

type compState struct {
	c       Company
	part    int
	next    time.Time
	running bool
	gone    bool // no longer this replica's: not rescheduled
	index   int  // in the schedule heap (-1: not in it)
}

// Owned returns the companies this replica currently holds.
func (r *Runner) Owned() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int64
	for _, ps := range r.parts {
		for id, cs := range ps.comps {
			if !cs.gone {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Ready is closed once the runner has taken its first share of the
// partitions (or failed to read them once).
func (r *Runner) Ready() <-chan struct{} {
	r.readyOnce.Do(func() { r.ready = make(chan struct{}) })
	return r.ready
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (r *Runner) ttl() time.Duration {
	if r.Members == nil {
		return 30 * time.Second
	}
	return r.Members.TTL()
}

// Run blocks until ctx is done, then stops every scan and releases the
// partitions.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	r.parts = map[int]*partState{}
	r.sched = nil
	r.wake = make(chan struct{}, 1)
	r.mu.Unlock()

	n := r.MaxConcurrentScans
	if n <= 0 {
		n = 32
	}
	work := make(chan *compState)
	var workers sync.WaitGroup
	for range n {
		workers.Go(func() {
			for cs := range work {
				r.scan(cs)
			}
		})
	}
	defer func() {
		close(work)
		r.stopAll()
		workers.Wait()
		r.releaseAll()
	}()

	ttl := r.ttl()
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	if r.Members != nil {
		// Heartbeats and the fence run on their own, so that a slow round
		// (many companies, a slow JetStream) never delays them.
		beats := make(chan struct{})
		go func() {
			defer close(beats)
			r.heartbeats(ctx, ttl)
		}()
		defer func() { <-beats }()
		for !r.live(ttl) {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(ttl / 30):
			}
		}
		// Replicas starting together see each other before taking
		// anything.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(ttl/6, 2*time.Second)):
		}
	}
	r.rebalance(ctx)
	r.Ready()
	close(r.ready)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Hand out every due company a worker can take.
		r.mu.Lock()
		var due *compState
		wait := time.Hour
		if len(r.sched) > 0 {
			if d := time.Until(r.sched[0].next); d <= 0 {
				due = heap.Pop(&r.sched).(*compState)
				due.running = true
				r.parts[due.part].running++
			} else {
				wait = d
			}
		}
		r.mu.Unlock()
		if due != nil {
			select {
			case work <- due:
				continue
			case <-ctx.Done():
				r.finished(due, 0)
				return nil
			case <-tick.C:
				r.finished(due, time.Nanosecond) // back in the schedule, due at once
				r.rebalance(ctx)
				continue
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			r.rebalance(ctx)
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// heartbeats renews this replica's membership every TTL/3 and fences it —
// stops every scan — as soon as two thirds of the TTL have passed since the
// last renewal that succeeded, before the membership can expire and
// another replica take its partitions.
func (r *Runner) heartbeats(ctx context.Context, ttl time.Duration) {
	beat := time.NewTicker(ttl / 3)
	defer beat.Stop()
	watch := time.NewTicker(ttl / 12)
	defer watch.Stop()
	renew := func() {
		sent := time.Now()
		hctx, cancel := context.WithTimeout(ctx, ttl/3)
		defer cancel()
		if err := r.Members.Heartbeat(hctx); err != nil {
			if ctx.Err() == nil {
				r.log().Warn("heartbeat failed", "error", err)
			}
			return
		}
		r.lastBeat.Store(sent.UnixNano())
	}
	renew()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			renew()
		case <-watch.C:
		}
		if !r.live(ttl) {
			r.fence()
		}
	}
}

// live reports whether this replica's membership is surely not expired:
// renewed within two thirds of the TTL.
func (r *Runner) live(ttl time.Duration) bool {
	if r.Members == nil {
		return true
	}
	last := r.lastBeat.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < ttl*2/3
}

func (r *Runner) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// scan runs one scan of cs, then schedules its next.
func (r *Runner) scan(cs *compState) {
	r.mu.Lock()
	ps := r.parts[cs.part]
	ctx, c := ps.ctx, cs.c
	r.mu.Unlock()
	if ctx.Err() != nil {
		r.finished(cs, 0)
		return
	}
	res, err := r.Poller.Scan(ctx, c.Source, c.ID, r.Progress)
	if ctx.Err() != nil {
		r.finished(cs, 0)
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
	r.finished(cs, max(wait, time.Nanosecond))
}

// finished marks cs's scan over and schedules it again after wait (0: not
// again).
func (r *Runner) finished(cs *compState, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs.running = false
	ps := r.parts[cs.part] // kept until its scans end
	ps.running--
	switch {
	case cs.gone:
		if ps.comps[cs.c.ID] == cs {
			delete(ps.comps, cs.c.ID)
		}
	case wait > 0:
		cs.next = time.Now().Add(wait)
		heap.Push(&r.sched, cs)
	}
	r.signal()
}

// rebalance renews the view of members, holdings and companies, and moves
// this replica towards its share: partitions it should give up are
// drained and released, free ones it should hold are claimed.
func (r *Runner) rebalance(ctx context.Context) {
	ttl := r.ttl()
	if !r.live(ttl) {
		return // fenced: nothing is taken until the membership is renewed
	}
	comps, err := r.Companies(ctx)
	if err != nil {
		r.log().Error("cannot list companies", "error", err)
		return
	}
	byPart := map[int][]Company{}
	var weights [Partitions]int
	for _, c := range comps {
		p := PartitionOf(c.ID)
		byPart[p] = append(byPart[p], c)
		weights[p]++
	}
	var want map[int]string
	holdings := map[int]Holding{}
	live := map[string]bool{}
	self := ""
	if r.Members == nil {
		want = map[int]string{}
		for p := range Partitions {
			want[p] = ""
		}
	} else {
		self = r.Members.Self()
		members, err := r.Members.Members(ctx)
		if err != nil {
			r.log().Warn("cannot list replicas", "error", err)
			return
		}
		if !slices.Contains(members, self) {
			members = append(members, self)
		}
		if holdings, err = r.Members.Holdings(ctx); err != nil {
			r.log().Warn("cannot read partitions", "error", err)
			return
		}
		held := map[int]string{}
		for p, h := range holdings {
			held[p] = h.Holder
		}
		want = Assign(members, weights, held)
		for _, m := range members {
			live[m] = true
		}
	}

	r.mu.Lock()
	// Give up what is no longer ours, or no longer recorded as ours.
	for p, ps := range r.parts {
		h, recorded := holdings[p]
		lost := r.Members != nil && (!recorded || h.Holder != self || h.Rev != ps.h.Rev)
		if want[p] != self || lost {
			if !ps.releasing {
				r.log().Info("partition handed over", "partition", p, "to", want[p], "lost", lost)
				r.drop(ps)
			}
			if lost {
				ps.h = Holding{} // nothing of ours to release
			}
		}
	}
	r.releaseDrained(ctx)
	// Recorded as ours but not held (a release that failed, or a restart
	// within the TTL) and meant for another: free it.
	for p, h := range holdings {
		if _, ok := r.parts[p]; !ok && r.Members != nil && h.Holder == self && want[p] != self {
			if err := r.Members.Release(ctx, p, h); err != nil {
				r.log().Warn("partition not released", "partition", p, "error", err)
			}
		}
	}
	var claim []int
	for p := range Partitions {
		if want[p] != self {
			continue
		}
		if ps, ok := r.parts[p]; ok {
			if !ps.releasing { // one being handed over is released first, then may be claimed again
				r.sync(ps, p, byPart[p]) // a company new in a partition we hold: just connected
			}
			continue
		}
		claim = append(claim, p)
	}
	r.mu.Unlock()

	for _, p := range claim {
		was := holdings[p]
		var h Holding
		if r.Members != nil {
			if was.Rev != 0 && was.Holder != self && live[was.Holder] {
				continue // its holder is handing it over: taken once released
			}
			if was.Rev != 0 && was.Holder != self {
				r.log().Info("taking over the partition of a replica that is no longer live", "partition", p, "holder", was.Holder)
			}
			if !r.live(ttl) {
				break
			}
			if was.Holder == self {
				h = was // recorded as ours already (a restart within the TTL, or we were fenced)
			} else {
				if h, err = r.Members.Claim(ctx, p, was); err != nil {
					r.log().Debug("partition not claimed", "partition", p, "error", err)
					continue
				}
			}
		}
		pctx, cancel := context.WithCancel(ctx)
		ps := &partState{comps: map[int64]*compState{}, h: h, ctx: pctx, cancel: cancel}
		r.mu.Lock()
		if _, busy := r.parts[p]; busy { // still draining from an earlier hand-over
			r.mu.Unlock()
			cancel()
			continue
		}
		r.parts[p] = ps
		r.sync(ps, p, byPart[p])
		r.mu.Unlock()
		if r.Members != nil {
			r.log().Info("partition acquired", "partition", p, "companies", len(byPart[p]))
		}
	}
	r.signal()
}

// sync makes the schedule hold exactly the companies of partition p
// (called with mu held). A company new to this replica is scanned at once,
// as at a start: the replica that had it may have died in the middle of a
// scan, or never scanned it (replicas settling their shares at a cold
// start); the pool of workers bounds how many run together.
func (r *Runner) sync(ps *partState, p int, comps []Company) {
	in := map[int64]bool{}
	for _, c := range comps {
		in[c.ID] = true
		cs, ok := ps.comps[c.ID]
		if ok && !cs.gone {
			cs.c = c
			continue
		}
		if ok && cs.running {
			cs.gone = false // it comes back before its last scan ended
			continue
		}
		cs = &compState{c: c, part: p, next: time.Now(), index: -1}
		ps.comps[c.ID] = cs
		heap.Push(&r.sched, cs)
		r.log().Info("company acquired", "company_id", c.ID)
	}
	for id, cs := range ps.comps {
		if !in[id] {
			r.forget(ps, cs)
		}
	}
}

// forget takes cs out of the schedule (called with mu held); a running scan
// ends on its own and is not rescheduled.
func (r *Runner) forget(ps *partState, cs *compState) {
	cs.gone = true
	if cs.index >= 0 {
		heap.Remove(&r.sched, cs.index)
	}
	if !cs.running {
		delete(ps.comps, cs.c.ID)
	}
}

// drop starts handing a partition over: its scans are cancelled and its
// companies leave the schedule (called with mu held).
func (r *Runner) drop(ps *partState) {
	ps.releasing = true
	ps.cancel()
	for _, cs := range ps.comps {
		r.forget(ps, cs)
	}
}

// releaseDrained releases every partition being handed over whose scans
// have ended (called with mu held).
func (r *Runner) releaseDrained(ctx context.Context) {
	for p, ps := range r.parts {
		if !ps.releasing || ps.running > 0 {
			continue
		}
		if r.Members != nil && ps.h.Rev != 0 {
			if err := r.Members.Release(ctx, p, ps.h); err != nil {
				r.log().Warn("partition not released (it frees itself when this replica's membership expires)", "partition", p, "error", err)
			}
		}
		delete(r.parts, p)
	}
}

// fence stops every scan at once: this replica's membership may expire.
func (r *Runner) fence() {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ps := range r.parts {
		if !ps.releasing {
			r.drop(ps)
			n++
		}
		ps.h = Holding{} // kept by the record if still ours; taken back by the next round
	}
	if n > 0 {
		r.log().Error("cannot renew this replica's membership: every scan stopped until it can", "partitions", n)
	}
	r.releaseDrained(context.Background())
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ps := range r.parts {
		if !ps.releasing {
			r.drop(ps)
		}
	}
}

// releaseAll releases every partition once its scans ended, and leaves.
func (r *Runner) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.mu.Lock()
	r.releaseDrained(ctx)
	r.mu.Unlock()
	if r.Members != nil {
		if err := r.Members.Leave(ctx); err != nil {
			r.log().Warn("membership not ended (it expires on its own)", "error", err)
		}
	}
}

// schedule is a min-heap of companies by next scan.
type schedule []*compState

func (s schedule) Len() int           { return len(s) }
func (s schedule) Less(i, j int) bool { return s[i].next.Before(s[j].next) }
func (s schedule) Swap(i, j int) {
	s[i], s[j] = s[j], s[i]
	s[i].index, s[j].index = i, j
}
func (s *schedule) Push(x any) {
	cs := x.(*compState)
	cs.index = len(*s)
	*s = append(*s, cs)
}
func (s *schedule) Pop() any {
	old := *s
	cs := old[len(old)-1]
	old[len(old)-1] = nil
	cs.index = -1
	*s = old[:len(old)-1]
	return cs
}
