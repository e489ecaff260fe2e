// Package timers gives documents durable wake-ups with JetStream message
// schedules: one "@at" schedule per document on <root>.at.<cid>.<id>
// firing a message on <root>.fire.<cid>.<id> (root: incasso.timers for the
// poller, incasso.dunning.timers for dunning). A newer schedule on the
// same subject replaces the older one (the server rolls the subject up), and
// a purge cancels it, so there is never a periodic scan over all documents.
// Timers live in the stream: they survive restarts of every process.
package timers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/jsbatch"
	"github.com/incasso-io/incasso/internal/natsrv"
	rcv "github.com/incasso-io/incasso/internal/receivables"
	"github.com/incasso-io/incasso/internal/settle"
)

// StreamName is the poller's timer stream.
const StreamName = "INCASSO_TIMERS"

// Config names a timer stream; the zero value is the poller's.
type Config struct {
	Stream   string // default INCASSO_TIMERS
	Subject  string // root subject, default incasso.timers
	Consumer string // durable consumer, default poller-timers
	Replicas int
}

func (c *Config) setDefaults() {
	if c.Stream == "" {
		c.Stream = StreamName
	}
	if c.Subject == "" {
		c.Subject = "incasso.timers"
	}
	if c.Consumer == "" {
		c.Consumer = "poller-timers"
	}
}

// Scheduler implements receivables.Timers on a JetStream stream.
type Scheduler struct {
	JS  jetstream.JetStream
	cfg Config
	// Clock is the clock instants are expressed in (nil: real time). With a
	// simulated clock (demo, tests) an instant is translated to the real
	// time at the same distance from now.
	Clock  func() time.Time
	stream jetstream.Stream
}

var _ rcv.Timers = (*Scheduler)(nil)

// New creates or updates the poller's timer stream.
func New(ctx context.Context, js jetstream.JetStream, replicas int) (*Scheduler, error) {
	return NewWith(ctx, js, Config{Replicas: replicas})
}

// NewWith creates or updates a timer stream (work-queue retention: a fired
// message disappears once handled; schedules wait until they fire).
func NewWith(ctx context.Context, js jetstream.JetStream, c Config) (*Scheduler, error) {
	c.setDefaults()
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: c.Stream, Description: "durable per-document timers (message schedules)",
		Subjects: []string{c.Subject + ".>"}, Storage: jetstream.FileStorage, Replicas: max(1, c.Replicas),
		Retention: jetstream.WorkQueuePolicy, AllowMsgSchedules: true,
	})
	if err != nil {
		return nil, fmt.Errorf("timers: ensure stream %s: %w", c.Stream, err)
	}
	return &Scheduler{JS: js, cfg: c, stream: st}, nil
}

func (s *Scheduler) atPrefix() string   { return s.cfg.Subject + ".at." }
func (s *Scheduler) firePrefix() string { return s.cfg.Subject + ".fire." }

func key(cid, id int64) string { return strconv.FormatInt(cid, 10) + "." + strconv.FormatInt(id, 10) }

// Schedule implements receivables.Timers. Instants are rounded up to the
// second (the @at resolution), so a timer never fires early.
func (s *Scheduler) Schedule(ctx context.Context, cid, id int64, at time.Time) error {
	if at.IsZero() {
		return s.cancel(ctx, cid, id)
	}
	subj, opts, at := s.schedule(cid, id, at)
	if _, err := s.JS.Publish(ctx, subj, nil, opts...); err != nil {
		return fmt.Errorf("timers: schedule %s at %s: %w", subj, at.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// ScheduleAll implements receivables.Timers: the schedules go out
// asynchronously and their acks are awaited together; cancellations (a
// purge each) are rare and done one by one.
func (s *Scheduler) ScheduleAll(ctx context.Context, ts []rcv.Timer) error {
	batch := make([]jsbatch.Pub, 0, len(ts))
	var failed []error
	for _, t := range ts {
		if t.At.IsZero() {
			if err := s.cancel(ctx, t.CompanyID, t.ID); err != nil {
				failed = append(failed, err)
			}
			continue
		}
		subj, opts, _ := s.schedule(t.CompanyID, t.ID, t.At)
		batch = append(batch, jsbatch.Pub{Msg: &nats.Msg{Subject: subj, Header: nats.Header{}}, Opts: opts})
	}
	_, errs := jsbatch.PublishAll(ctx, s.JS, batch)
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Errorf("timers: schedule %s: %w", batch[i].Msg.Subject, err))
		}
	}
	return errors.Join(failed...)
}

// schedule returns the subject and options of a document's schedule at an
// instant, and the instant used (translated from a simulated clock, rounded
// up to the second).
func (s *Scheduler) schedule(cid, id int64, at time.Time) (string, []jetstream.PublishOpt, time.Time) {
	if s.Clock != nil {
		at = time.Now().Add(at.Sub(s.Clock()))
	}
	if t := at.Truncate(time.Second); !t.Equal(at) {
		at = t.Add(time.Second)
	}
	return s.atPrefix() + key(cid, id), []jetstream.PublishOpt{jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(s.firePrefix() + key(cid, id))}, at
}

func (s *Scheduler) cancel(ctx context.Context, cid, id int64) error {
	subj := s.atPrefix() + key(cid, id)
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		return fmt.Errorf("timers: cancel %s: %w", subj, err)
	}
	return nil
}

// Pending returns how many schedules are waiting (metrics).
func (s *Scheduler) Pending(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(s.atPrefix()+">"))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// parseFire reads company and document from a fired subject.
func (s *Scheduler) parseFire(subject string) (int64, int64, error) {
	rest, ok := strings.CutPrefix(subject, s.firePrefix())
	c, d, ok2 := strings.Cut(rest, ".")
	cid, err1 := strconv.ParseInt(c, 10, 64)
	id, err2 := strconv.ParseInt(d, 10, 64)
	if !ok || !ok2 || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("timers: bad fire subject %q", subject)
	}
	return cid, id, nil
}

// Consume runs handler for every fired timer on a durable consumer shared by
// all replicas (settle.Consumer: a handler error is retried with backoff;
// after MaxDeliver attempts the message is terminated and logged). ctx is
// the work context handlers run under.
func (s *Scheduler) Consume(ctx context.Context, handler func(ctx context.Context, cid, id int64) error, log *slog.Logger) (jetstream.ConsumeContext, error) {
	const maxDeliver = 20
	c := settle.Consumer{Stream: s.cfg.Stream, Policy: settle.Policy{Log: log},
		Config: jetstream.ConsumerConfig{Durable: s.cfg.Consumer, FilterSubject: s.firePrefix() + ">", AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: 60 * time.Second, MaxDeliver: maxDeliver}}
	cc, err := c.Start(ctx, ctx, s.JS, natsrv.Retry, func(ctx context.Context, m jetstream.Msg) error {
		cid, id, err := s.parseFire(m.Subject())
		if err != nil {
			return fmt.Errorf("%w: %v", settle.ErrPermanent, err)
		}
		if err := handler(ctx, cid, id); err != nil {
			return fmt.Errorf("timer %d/%d: %w", cid, id, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("timers: %w", err)
	}
	return cc, nil
}
