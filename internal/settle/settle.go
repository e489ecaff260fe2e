// Package settle is the one place that decides what happens to a JetStream
// message after its handler ran:
//
//	handler returned                         JetStream action
//	nil                                      Ack
//	ErrHandedOff                             none: the handler gave the message to
//	                                         something that settles it later
//	a Permanent error                        dead-letter (if configured), then Term
//	ErrWaiting, attempts left                NakWithDelay(WaitBackoff(attempt)), quietly:
//	                                         the message waits for another one
//	an error, attempts left                  NakWithDelay(Backoff(attempt, err))
//	an error, attempts exhausted             dead-letter (if configured), then Term
//
// Handlers never ack by themselves. Consumer creates a durable consumer and
// runs a handler per message under this policy, with a per-message
// deadline and the work context of the process: the timers of the poller
// and of dunning, dunning's events consumer and the webhook inbox all use
// it (the inbox hands its notifications off to inbox.Queue, which acks one
// only once all its documents are handled).
package settle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrPermanent marks errors that retrying cannot fix (undecodable input).
var ErrPermanent = errors.New("permanent failure")

// ErrWaiting: the message cannot be handled before another one is (an
// earlier event of the same document, on another replica). It is handed
// back with a short, doubling delay and logged only at debug level.
var ErrWaiting = errors.New("settle: waiting for an earlier message")

// WaitBackoff is the delay before attempt n+1 of a waiting message: 400 ms,
// doubling, at most a minute (the first nine attempts span 100 s, more
// than the AckWait after which a dead replica's message is redelivered).
func WaitBackoff(attempt uint64) time.Duration {
	return min(400*time.Millisecond<<min(attempt-1, 8), time.Minute)
}

// ErrHandedOff: the handler passed the message on to something that acks
// or naks it later; Settle leaves it alone.
var ErrHandedOff = errors.New("settle: message handed off")

// Policy settles messages.
type Policy struct {
	MaxDeliver uint64 // attempts before giving up (the consumer's MaxDeliver)
	// Backoff is the delay before attempt n+1 (default n² seconds, max 5m).
	Backoff func(attempt uint64, err error) time.Duration
	// DeadLetter, if set, stores a message that is given up on, with the
	// reason, before it is terminated. If it fails, the message is Nak'ed
	// instead, so nothing is lost.
	DeadLetter func(ctx context.Context, m jetstream.Msg, reason string) error
	Log        *slog.Logger
}

// Settle applies the policy to m given the handler's error.
func (p Policy) Settle(ctx context.Context, m jetstream.Msg, err error, attrs ...any) {
	switch {
	case err == nil:
		_ = m.Ack()
		return
	case errors.Is(err, ErrHandedOff):
		return
	}
	attempt := uint64(1)
	if md, merr := m.Metadata(); merr == nil {
		attempt = md.NumDelivered
	}
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	attrs = append(attrs, "subject", m.Subject(), "attempt", attempt, "error", err)
	if errors.Is(err, ErrPermanent) || (p.MaxDeliver > 0 && attempt >= p.MaxDeliver) {
		if p.DeadLetter != nil {
			if dlErr := p.DeadLetter(ctx, m, err.Error()); dlErr != nil {
				log.Error("dead-letter failed; message kept for redelivery", append(attrs, "dead_letter_error", dlErr)...)
				_ = m.NakWithDelay(time.Minute)
				return
			}
		}
		log.Error("message given up", attrs...)
		_ = m.TermWithReason(err.Error())
		return
	}
	d := time.Duration(attempt*attempt) * time.Second
	switch {
	case errors.Is(err, ErrWaiting):
		log.Debug("message waits for an earlier one", attrs...)
		_ = m.NakWithDelay(WaitBackoff(attempt))
		return
	case p.Backoff != nil:
		d = p.Backoff(attempt, err)
	}
	if !errors.Is(err, context.Canceled) {
		log.Warn("handler failed; will retry", append(attrs, "retry_in", min(d, 5*time.Minute).String())...)
	}
	_ = m.NakWithDelay(min(d, 5*time.Minute))
}

// Drain stops consumers gracefully: no new messages, in-flight handlers
// finish and settle; it returns when all are closed or ctx is done.
func Drain(ctx context.Context, ccs ...jetstream.ConsumeContext) {
	for _, cc := range ccs {
		cc.Drain()
	}
	for _, cc := range ccs {
		select {
		case <-cc.Closed():
		case <-ctx.Done():
			return
		}
	}
}

// Consumer is a durable JetStream consumer whose every message is handled
// by a function and settled by Policy: the one place where Incasso's
// consumers (webhook-fired timers, dunning's events, dunning's timers) get
// their ack, redelivery, deadline and dead-letter behaviour.
type Consumer struct {
	Stream string
	Config jetstream.ConsumerConfig
	// Policy settles each message; its MaxDeliver defaults to the
	// consumer's.
	Policy Policy
	// Deadline bounds one handler call (default: the consumer's AckWait,
	// so a handler never outlives its message's lease).
	Deadline time.Duration
	// Dispatch, if set, runs the handling of a message (for example in a
	// per-document lane); by default it runs inline, one message at a time
	// per consumer callback.
	Dispatch func(m jetstream.Msg, handle func())
}

// Retrier retries f while JetStream is not ready (natsrv.Retry).
type Retrier func(ctx context.Context, f func(context.Context) error) error

// Start creates (or updates) the consumer — retrying with retry while
// JetStream is not ready, until ctx ends — and consumes it. Handlers run
// under work (which should outlive the stop signal, see
// lifecycle.WorkContext) with the per-message deadline; their error is
// settled by the policy: nil acks, ErrPermanent dead-letters and
// terminates, anything else is redelivered with backoff. Stop or drain the
// returned ConsumeContext to stop.
func (c Consumer) Start(ctx, work context.Context, js jetstream.JetStream, retry Retrier, handler func(ctx context.Context, m jetstream.Msg) error) (jetstream.ConsumeContext, error) {
	var cons jetstream.Consumer
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		cons, err = js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("settle: consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
	}
	pol := c.Policy
	if pol.MaxDeliver == 0 && c.Config.MaxDeliver > 0 {
		pol.MaxDeliver = uint64(c.Config.MaxDeliver)
	}
	deadline := c.Deadline
	if deadline <= 0 {
		deadline = c.Config.AckWait
	}
	if deadline <= 0 {
		deadline = 30 * time.Second
	}
	handle := func(m jetstream.Msg) {
		hctx, cancel := context.WithTimeout(work, deadline)
		defer cancel()
		pol.Settle(work, m, handler(hctx, m))
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if c.Dispatch != nil {
			c.Dispatch(m, func() { handle(m) })
			return
		}
		handle(m)
	})
	if err != nil {
		return nil, fmt.Errorf("settle: consume %s: %w", c.Config.Durable, err)
	}
	return cc, nil
}
