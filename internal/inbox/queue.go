package inbox

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Msg is what the queue needs of a stored notification: a JetStream
// message (jetstream.Msg satisfies it).
type Msg interface {
	Ack() error
	Nak() error
	InProgress() error
}

// Queue holds webhook notifications until every document they name has
// been handled, and hands the documents out so that:
//
//   - companies are served round-robin: a burst of one company (a
//     notification with 3,000 ids, or 5,000 notifications) never delays the
//     next notification of another by more than one fetch per worker;
//   - a document named by several pending notifications is fetched once
//     for all of them (a notification arriving while its document is being
//     fetched gets a fetch of its own afterwards: the one in flight may
//     have read the document before the change it announces);
//   - when a company has many documents pending, they are handed out as one
//     batch (RefreshMany), which lists the company's pages instead of
//     fetching documents one by one when that costs fewer requests.
//
// A notification is acknowledged only when every one of its documents is
// handled. Until then it is kept alive with in-progress acks; when the queue
// stops, what is not finished is Nak'ed, for another replica.
type Queue struct {
	// Refresh handles one document (fetch and apply).
	Refresh func(ctx context.Context, cid, id int64) error
	// RefreshMany handles many documents of one company and returns the
	// ids handled (those not returned are retried one by one). Nil: never
	// batched.
	RefreshMany func(ctx context.Context, cid int64, ids []int64) ([]int64, error)
	// RetryAfter says how long a company must wait after err (a quota
	// error: until the reset); false means "retry with backoff".
	RetryAfter func(err error) (time.Duration, bool)
	// Workers is how many documents are handled at once (default 8);
	// PerCompany is how many of them may belong to one company (default 4).
	Workers, PerCompany int
	// BatchAt is the number of pending documents of a company from which
	// they are handed to RefreshMany as one batch (default 20).
	BatchAt int
	// BurstAt and Linger coalesce a burst that arrives as many small
	// notifications (a bank import marking 1,000 invoices paid): when a
	// company's notifications name BurstAt documents or more within a
	// second (default 20), its documents wait Linger (default 1 s) so that
	// they are handled as one batch — a few page requests instead of a GET
	// each, which would spend FIC's hourly quota (1,000 requests) in one
	// go. Other companies are not affected. Negative Linger: off.
	BurstAt int
	Linger  time.Duration
	// MaxAttempts bounds the tries of one document (default 12, backoff
	// 1 s doubling to 5 min); then it is given up with an error log and its
	// notifications are acknowledged: the next reconciliation scan is the
	// backstop.
	MaxAttempts int
	// Heartbeat is how often held notifications are marked in progress
	// (default 20 s; keep it well under the consumer's AckWait).
	Heartbeat time.Duration
	// Timeout bounds one Refresh or RefreshMany call (default 10 min).
	Timeout time.Duration
	Log     *slog.Logger
	// OnHandled, if set, is told each document handled and how many
	// notifications were waiting for it.
	OnHandled func(cid, id int64, waiters int, err error)

	mu     sync.Mutex
	comps  map[int64]*company
	ring   []int64 // companies with pending documents, in service order
	held   map[*held]struct{}
	wake   chan struct{}
	closed bool
}

type held struct {
	msg  Msg
	left int // documents not handled yet
}

type company struct {
	id       int64
	docs     map[int64]*docState
	order    []int64 // pending, not in flight, FIFO
	inflight int
	batching bool
	paused   time.Time
	// burst detection (see Queue.BurstAt)
	winStart  time.Time
	winCount  int
	lingering time.Time // documents wait until then
}

type docState struct {
	waiting  []*held // notifications that need a fetch not yet started
	taken    []*held // notifications the fetch in flight answers
	inflight bool
	attempts int
	notAfter time.Time // retry not before
}

func (q *Queue) init() {
	if q.comps == nil {
		q.comps, q.held, q.wake = map[int64]*company{}, map[*held]struct{}{}, make(chan struct{})
	}
}

func (q *Queue) workers() int    { return def(q.Workers, 8) }
func (q *Queue) perCompany() int { return def(q.PerCompany, 4) }
func (q *Queue) batchAt() int    { return def(q.BatchAt, 20) }
func (q *Queue) maxAttempts() int {
	return def(q.MaxAttempts, 12)
}

func def(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

func (q *Queue) log() *slog.Logger {
	if q.Log != nil {
		return q.Log
	}
	return slog.New(slog.DiscardHandler)
}

// signal wakes every waiting worker (called with mu held).
func (q *Queue) signal() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// Add holds a notification until its documents are handled. A notification
// with no document is acknowledged at once. After Run has returned, Add
// Naks the message (another replica takes it).
func (q *Queue) Add(m Msg, cid int64, ids []int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.init()
	if q.closed {
		_ = m.Nak()
		return
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) == 0 {
		_ = m.Ack()
		return
	}
	h := &held{msg: m, left: len(ids)}
	q.held[h] = struct{}{}
	c := q.comps[cid]
	if c == nil {
		c = &company{id: cid, docs: map[int64]*docState{}}
		q.comps[cid] = c
	}
	if len(c.order) == 0 && c.inflight == 0 {
		q.ring = append(q.ring, cid)
	}
	if now := time.Now(); q.RefreshMany != nil && q.Linger >= 0 {
		if now.Sub(c.winStart) > time.Second {
			c.winStart, c.winCount = now, 0
		}
		c.winCount += len(ids)
		if c.winCount >= def(q.BurstAt, 20) && !c.lingering.After(now) {
			linger := q.Linger
			if linger == 0 {
				linger = time.Second
			}
			c.lingering = now.Add(linger)
		}
	}
	for _, id := range ids {
		d := c.docs[id]
		if d == nil {
			d = &docState{}
			c.docs[id] = d
		}
		if len(d.waiting) == 0 && !d.inflight {
			c.order = append(c.order, id)
		}
		d.waiting = append(d.waiting, h)
	}
	q.signal()
}

// job is what a worker takes: one document, or a batch of one company.
type job struct {
	c   *company
	ids []int64
}

// take returns the next job, or the instant to look again (zero: when
// signalled). Called with mu held.
func (q *Queue) take(now time.Time) (job, time.Time) {
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for range len(q.ring) {
		cid := q.ring[0]
		q.ring = append(q.ring[1:], cid) // round-robin: the company goes last
		c := q.comps[cid]
		if c.paused.After(now) {
			later(c.paused)
			continue
		}
		if c.inflight >= q.perCompany() {
			continue
		}
		if c.lingering.After(now) {
			later(c.lingering) // a burst: let it gather into one batch
			continue
		}
		var ready []int64
		for _, id := range c.order {
			d := c.docs[id]
			if d.notAfter.After(now) {
				later(d.notAfter)
				continue
			}
			ready = append(ready, id)
		}
		if len(ready) == 0 {
			continue
		}
		if q.RefreshMany != nil && !c.batching && len(ready) >= q.batchAt() {
			c.batching = true
		} else {
			ready = ready[:1]
		}
		for _, id := range ready {
			d := c.docs[id]
			d.inflight, d.taken, d.waiting = true, d.waiting, nil
		}
		c.order = slices.DeleteFunc(c.order, func(id int64) bool { return c.docs[id].inflight })
		c.inflight++
		return job{c: c, ids: ready}, time.Time{}
	}
	return job{}, next
}

// done records the outcome of a job: handled ids are settled, the others
// are retried. Called with mu held.
func (q *Queue) done(j job, handled []int64, err error, now time.Time) {
	c := j.c
	c.inflight--
	if len(j.ids) > 1 {
		c.batching = false
	}
	if err != nil && q.RetryAfter != nil {
		if d, ok := q.RetryAfter(err); ok {
			c.paused = now.Add(d)
		}
	}
	for _, id := range j.ids {
		d := c.docs[id]
		d.inflight = false
		ok := slices.Contains(handled, id)
		if !ok && len(j.ids) > 1 && err == nil {
			// Not handled by the batch, without an error: fetch it alone.
			d.waiting = append(d.taken, d.waiting...)
			d.taken = nil
			c.order = append(c.order, id)
			continue
		}
		if !ok {
			d.attempts++
			if d.attempts < q.maxAttempts() {
				d.waiting = append(d.taken, d.waiting...)
				d.taken = nil
				d.notAfter = now.Add(min(time.Second<<min(d.attempts-1, 9), 5*time.Minute))
				c.order = append(c.order, id)
				continue
			}
			q.log().Error("webhook document given up after repeated failures; the next reconciliation scan will catch it",
				"company_id", c.id, "document_id", id, "attempts", d.attempts, "error", err)
		}
		if q.OnHandled != nil {
			q.OnHandled(c.id, id, len(d.taken), err)
		}
		for _, h := range d.taken {
			h.left--
			if h.left == 0 {
				_ = h.msg.Ack()
				delete(q.held, h)
			}
		}
		d.taken, d.attempts, d.notAfter = nil, 0, time.Time{}
		if len(d.waiting) > 0 {
			c.order = append(c.order, id) // announced again while in flight: fetch again
		} else {
			delete(c.docs, id)
		}
	}
	if len(c.order) == 0 && c.inflight == 0 {
		q.ring = slices.DeleteFunc(q.ring, func(x int64) bool { return x == c.id })
		if len(c.docs) == 0 {
			delete(q.comps, c.id)
		}
	}
	q.signal()
}

// Run serves the queue until ctx is done. Work in flight then finishes
// (each call has its own Timeout, not ctx), and every notification not
// fully handled is Nak'ed so that another replica takes it at once.
func (q *Queue) Run(ctx context.Context) error {
	q.mu.Lock()
	q.init()
	q.mu.Unlock()
	var wg sync.WaitGroup
	for range q.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.work(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		q.heartbeat(ctx)
	}()
	wg.Wait()
	q.mu.Lock()
	q.closed = true
	for h := range q.held {
		_ = h.msg.Nak()
	}
	q.held = map[*held]struct{}{}
	q.comps, q.ring = map[int64]*company{}, nil
	q.mu.Unlock()
	return nil
}

func (q *Queue) work(ctx context.Context) {
	timeout := q.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	for {
		q.mu.Lock()
		j, next := q.take(time.Now())
		wake := q.wake
		q.mu.Unlock()
		if j.c == nil {
			var (
				timer <-chan time.Time
				t     *time.Timer
			)
			if !next.IsZero() {
				t = time.NewTimer(time.Until(next))
				timer = t.C
			}
			select {
			case <-ctx.Done():
			case <-wake:
			case <-timer:
			}
			if t != nil {
				t.Stop()
			}
			if ctx.Err() != nil {
				return
			}
			continue
		}
		// In-flight work is not cut by the stop signal: it has its own
		// deadline, and its outcome is settled.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		var (
			handled []int64
			err     error
		)
		if len(j.ids) == 1 {
			if err = q.Refresh(wctx, j.c.id, j.ids[0]); err == nil {
				handled = j.ids
			}
		} else {
			handled, err = q.RefreshMany(wctx, j.c.id, j.ids)
		}
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			q.log().Warn("webhook document not handled yet; will retry", "company_id", j.c.id, "documents", len(j.ids), "error", err)
		}
		q.mu.Lock()
		q.done(j, handled, err, time.Now())
		q.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
	}
}

func (q *Queue) heartbeat(ctx context.Context) {
	every := q.Heartbeat
	if every <= 0 {
		every = 20 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		q.mu.Lock()
		msgs := make([]Msg, 0, len(q.held))
		for h := range q.held {
			msgs = append(msgs, h.msg)
		}
		q.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}
