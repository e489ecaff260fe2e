package delivery

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/events"
)

// Store keeps the endpoints (kvstore.Endpoints).
type Store interface {
	List(ctx context.Context) ([]Endpoint, error)
	Get(ctx context.Context, id string) (Endpoint, error) // ErrNotFound
	Create(ctx context.Context, e Endpoint) error
	// Update applies f under compare-and-set and returns the result.
	Update(ctx context.Context, id string, f func(*Endpoint) error) (Endpoint, error)
	Delete(ctx context.Context, id string) error
}

// Attempt is one line of an endpoint's delivery log.
type Attempt struct {
	At        time.Time `json:"at"`
	EventID   string    `json:"event_id"`
	Type      string    `json:"type"`
	Subject   string    `json:"subject,omitempty"`
	Seq       uint64    `json:"stream_seq,omitempty"`
	Attempt   int       `json:"attempt"`
	Status    int       `json:"status"`
	Error     string    `json:"error,omitempty"`
	LatencyMS float64   `json:"latency_ms"`
	// Outcome: delivered, retrying, given_up, disabled, replayed,
	// replay_failed, test.
	Outcome string `json:"outcome"`
}

// Log keeps each endpoint's recent attempts (kvstore.DeliveryLog).
type Log interface {
	Append(ctx context.Context, endpointID string, a Attempt) error
	Recent(ctx context.Context, endpointID string, limit int) ([]Attempt, error)
}

// DefaultSchedule is when each attempt is made, after the previous one
// failed: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h
// (Svix's schedule: about 28 hours in all).
var DefaultSchedule = []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Manager runs a worker per enabled endpoint. Every replica of the dunning
// service runs a Manager; each endpoint's consumer is pinned to one of them
// at a time (a JetStream priority group with the pinned policy), so one
// process delivers an endpoint's events in order and another takes over
// within PinnedTTL when it dies.
type Manager struct {
	JS     jetstream.JetStream
	Stream string // default events.StreamName
	Prefix string // subject prefix, default events.SubjectPrefix
	Store  Store
	Log    Log
	// Client returns the HTTP client for an endpoint's URL: a safehttp
	// client (https to public addresses, no redirect off the origin).
	Client       func(u *url.URL) *http.Client
	Schedule     []time.Duration // default DefaultSchedule
	DisableAfter time.Duration   // failing this long disables the endpoint (default 5 days)
	Lanes        int             // concurrent documents per endpoint (default 4)
	AckWait      time.Duration   // default 15s; in-progress acks keep a retried event
	// PinnedTTL is the failover time (default 30s). It is never less than
	// AckWait + the pull expiry + AckWait/2: a replica taking over must find
	// the events the dead one held already back in the consumer, or it
	// would deliver newer events of their documents first.
	PinnedTTL time.Duration
	Refresh   time.Duration // how often the endpoint list is read (default 2s)
	Now       func() time.Time
	Logger    *slog.Logger
	// OnAttempt and OnDisabled observe (metrics, alerts); may be nil.
	OnAttempt  func(ep Endpoint, a Attempt)
	OnDisabled func(ep Endpoint)

	mu      sync.Mutex
	workers map[string]*worker
	replays map[string]*ReplayStatus
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) log() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (m *Manager) stream() string {
	if m.Stream != "" {
		return m.Stream
	}
	return events.StreamName
}

func (m *Manager) prefix() string {
	if m.Prefix != "" {
		return m.Prefix
	}
	return events.SubjectPrefix
}

func (m *Manager) schedule() []time.Duration {
	if len(m.Schedule) > 0 {
		return m.Schedule
	}
	return DefaultSchedule
}

func dur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// ConsumerName is the durable consumer of an endpoint.
func ConsumerName(id string) string { return "delivery-" + id }

const priorityGroup = "deliver"

// Run keeps the workers in step with the endpoints until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	defer m.stopAll()
	t := time.NewTicker(dur(m.Refresh, 2*time.Second))
	defer t.Stop()
	for {
		if err := m.Sync(ctx); err != nil && ctx.Err() == nil {
			m.log().Warn("endpoints not read; delivery continues with what it knew", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sync starts, updates and stops workers to match the store.
func (m *Manager) Sync(ctx context.Context) error {
	eps, err := m.Store.List(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.workers == nil {
		m.workers = map[string]*worker{}
	}
	seen := map[string]bool{}
	for _, ep := range eps {
		seen[ep.ID] = true
		w := m.workers[ep.ID]
		if ep.Disabled {
			if w != nil {
				w.stop()
				delete(m.workers, ep.ID)
			}
			continue
		}
		if w != nil && w.done.Load() {
			w = nil // it stopped itself (disabled, or its consumer failed)
			delete(m.workers, ep.ID)
		}
		if w != nil && !slices.Equal(w.subjects, ep.Subjects(m.prefix())) {
			w.stop()
			w = nil
		}
		if w == nil {
			m.workers[ep.ID] = m.start(ctx, ep)
			continue
		}
		w.ep.Store(&ep)
	}
	for id, w := range m.workers {
		if !seen[id] {
			w.stop()
			delete(m.workers, id)
			// Deleted: its consumer goes too (every replica tries; one wins).
			if err := m.JS.DeleteConsumer(ctx, m.stream(), ConsumerName(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				m.log().Warn("consumer of a deleted endpoint not removed", "endpoint", id, "error", err)
			}
		}
	}
	return nil
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, w := range m.workers {
		w.stop()
		delete(m.workers, id)
	}
}

// worker delivers one endpoint's events.
type worker struct {
	m        *Manager
	ep       atomic.Pointer[Endpoint]
	subjects []string
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	done     atomic.Bool
}

type item struct {
	msg jetstream.Msg
	ev  event.Event
	seq uint64
}

func (m *Manager) start(parent context.Context, ep Endpoint) *worker {
	ctx, cancel := context.WithCancel(parent)
	w := &worker{m: m, subjects: ep.Subjects(m.prefix()), cancel: cancel}
	w.ep.Store(&ep)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer w.done.Store(true)
		if err := w.run(ctx); err != nil && ctx.Err() == nil {
			m.log().Error("endpoint delivery stopped; retried at the next sync", "endpoint", ep.ID, "error", err)
		}
	}()
	return w
}

func (w *worker) stop() {
	w.cancel()
	w.wg.Wait()
}

func (w *worker) run(ctx context.Context) error {
	m := w.m
	ep := *w.ep.Load()
	lanes := max(1, m.Lanes)
	if m.Lanes == 0 {
		lanes = 4
	}
	ackWait := dur(m.AckWait, 15*time.Second)
	pullExpiry := max(ackWait/3, time.Second)
	pinned := max(dur(m.PinnedTTL, 30*time.Second), ackWait+pullExpiry+max(ackWait/2, time.Second))
	if m.PinnedTTL == 0 && m.AckWait != 0 {
		pinned = ackWait + pullExpiry + max(ackWait/2, time.Second)
	}
	cons, err := m.JS.CreateOrUpdateConsumer(ctx, m.stream(), jetstream.ConsumerConfig{
		Durable: ConsumerName(ep.ID), Description: "HTTP delivery to " + redact(ep.URL),
		FilterSubjects: w.subjects, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
		DeliverPolicy: jetstream.DeliverNewPolicy, MaxDeliver: -1, MaxAckPending: lanes * 16,
		PriorityPolicy: jetstream.PriorityPolicyPinned, PriorityGroups: []string{priorityGroup},
		PinnedTTL: pinned,
	})
	if err != nil {
		return fmt.Errorf("consumer of endpoint %s: %w", ep.ID, err)
	}
	queues := make([]chan item, lanes)
	var lw sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan item, 16)
		lw.Add(1)
		go func(q chan item) {
			defer lw.Done()
			for it := range q {
				if ctx.Err() != nil {
					_ = it.msg.Nak() // stopping: back to the consumer at once, ahead of newer events
					continue
				}
				w.deliver(ctx, it, ackWait)
			}
		}(queues[i])
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		e, err := events.Decode(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		if err != nil {
			m.log().Error("event not deliverable: not a CloudEvent", "subject", msg.Subject(), "error", err)
			_ = msg.TermWithReason("not a CloudEvent")
			return
		}
		cid, _, _ := events.CompanyFromSubject(msg.Subject())
		if !w.ep.Load().Matches(cid, e.Type()) {
			_ = msg.Ack()
			return
		}
		var seq uint64
		if md, err := msg.Metadata(); err == nil {
			seq = md.Sequence.Stream
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(fmt.Sprint(cid, "/", e.Subject())))
		select {
		case queues[h.Sum32()%uint32(lanes)] <- item{msg: msg, ev: e, seq: seq}:
		case <-ctx.Done():
			_ = msg.Nak()
		}
	}, jetstream.PullPriorityGroup(priorityGroup), jetstream.PullMaxMessages(lanes*8), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		for _, q := range queues {
			close(q)
		}
		lw.Wait()
		return fmt.Errorf("consume endpoint %s: %w", ep.ID, err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	for _, q := range queues {
		close(q)
	}
	lw.Wait()
	// Everything held is back (Nak): let another replica, or this one's
	// next worker, take the consumer now rather than after PinnedTTL.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if st, err := m.JS.Stream(uctx, m.stream()); err == nil {
		_ = st.UnpinConsumer(uctx, ConsumerName(ep.ID), priorityGroup)
	}
	return nil
}

// deliver makes the attempts of one event, in its lane: the next event of
// the same document waits until this one is delivered or given up.
func (w *worker) deliver(ctx context.Context, it item, ackWait time.Duration) {
	m := w.m
	sched := m.schedule()
	for attempt := 1; ; attempt++ {
		if attempt > 1 && !sleepInProgress(ctx, sched[attempt-1], ackWait, it.msg) {
			_ = it.msg.Nak() // stopping: redelivered first
			return
		}
		ep := *w.ep.Load()
		if ep.Disabled {
			_ = it.msg.Nak()
			return
		}
		now := m.now()
		res := Send(ctx, m.Client(mustURL(ep.URL)), ep, it.ev, now)
		if ctx.Err() != nil && !res.Delivered() {
			_ = it.msg.Nak()
			return
		}
		a := attemptOf(it.ev, it.seq, attempt, now, res, "")
		switch {
		case res.Delivered():
			a.Outcome = "delivered"
			w.record(ctx, ep, a)
			if err := it.msg.DoubleAck(ctx); err != nil {
				m.log().Warn("delivered event not acknowledged: it may be delivered again (receivers dedupe on webhook-id)", "endpoint", ep.ID, "event_id", a.EventID, "error", err)
			}
			w.healthy(ctx, ep)
			return
		case res.Gone():
			a.Outcome = "disabled"
			w.record(ctx, ep, a)
			w.disable(ctx, ep, "the endpoint answered 410 Gone")
			_ = it.msg.Nak() // kept for when the endpoint is enabled again
			return
		}
		since := w.failing(ctx, ep, now)
		if now.Sub(since) >= dur(m.DisableAfter, 5*24*time.Hour) {
			a.Outcome = "disabled"
			w.record(ctx, ep, a)
			w.disable(ctx, ep, fmt.Sprintf("failing since %s (last: %s)", since.UTC().Format(time.RFC3339), res))
			_ = it.msg.Nak()
			return
		}
		if attempt >= len(sched) {
			a.Outcome = "given_up"
			w.record(ctx, ep, a)
			m.log().Error("event given up after the whole retry schedule; replay it once the endpoint works", "endpoint", ep.ID, "event_id", a.EventID, "stream_seq", it.seq, "last", res.String())
			_ = it.msg.TermWithReason("delivery given up")
			return
		}
		a.Outcome = "retrying"
		w.record(ctx, ep, a)
	}
}

// attemptOf is the log line of one HTTP attempt at e.
func attemptOf(e event.Event, seq uint64, n int, now time.Time, res Result, outcome string) Attempt {
	a := Attempt{At: now.UTC(), EventID: e.ID(), Type: e.Type(), Subject: e.Subject(), Seq: seq, Attempt: n,
		Status: res.Status, LatencyMS: float64(res.Latency.Microseconds()) / 1000, Outcome: outcome}
	if res.Err != nil {
		a.Error = res.Err.Error()
	}
	return a
}

// sleepInProgress waits d, telling JetStream every ackWait/3 that the
// event is still being worked on. It returns false if ctx ended.
func sleepInProgress(ctx context.Context, d, ackWait time.Duration, msg jetstream.Msg) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(max(ackWait/3, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-tick.C:
			_ = msg.InProgress()
		}
	}
}

func (w *worker) record(ctx context.Context, ep Endpoint, a Attempt) {
	if w.m.OnAttempt != nil {
		w.m.OnAttempt(ep, a)
	}
	if w.m.Log == nil {
		return
	}
	if err := w.m.Log.Append(context.WithoutCancel(ctx), ep.ID, a); err != nil {
		w.m.log().Warn("delivery log not written", "endpoint", ep.ID, "error", err)
	}
}

// failing returns since when the endpoint has been failing, recording now
// if it was healthy.
func (w *worker) failing(ctx context.Context, ep Endpoint, now time.Time) time.Time {
	if !ep.FailingSince.IsZero() {
		return ep.FailingSince
	}
	up, err := w.m.Store.Update(context.WithoutCancel(ctx), ep.ID, func(e *Endpoint) error {
		if e.FailingSince.IsZero() {
			e.FailingSince = now.UTC()
		}
		return nil
	})
	if err != nil {
		return now
	}
	w.ep.Store(&up)
	return up.FailingSince
}

func (w *worker) healthy(ctx context.Context, ep Endpoint) {
	if ep.FailingSince.IsZero() {
		return
	}
	if up, err := w.m.Store.Update(context.WithoutCancel(ctx), ep.ID, func(e *Endpoint) error {
		e.FailingSince = time.Time{}
		return nil
	}); err == nil {
		w.ep.Store(&up)
	}
}

func (w *worker) disable(ctx context.Context, ep Endpoint, reason string) {
	up, err := w.m.Store.Update(context.WithoutCancel(ctx), ep.ID, func(e *Endpoint) error {
		e.Disabled, e.DisabledReason = true, reason
		return nil
	})
	if err != nil {
		w.m.log().Error("endpoint not disabled", "endpoint", ep.ID, "error", err)
		return
	}
	w.ep.Store(&up)
	w.m.log().Error("endpoint disabled: its events wait in its consumer until it is enabled again", "endpoint", ep.ID, "url", redact(ep.URL), "reason", reason)
	if w.m.OnDisabled != nil {
		w.m.OnDisabled(up)
	}
	w.cancel()
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// redact drops the query (which may carry a platform's token) and user info.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}
