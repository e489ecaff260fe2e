// Package settle is the one place that decides what happens to a JetStream
// message after its handler ran:
//
//	handler returned                         JetStream action
//	nil                                      Ack
//	a Permanent error                        dead-letter (if configured), then Term
//	an error, attempts left                  NakWithDelay(Backoff(attempt, err))
//	an error, attempts exhausted             dead-letter (if configured), then Term
//
// Handlers never ack by themselves.
package settle

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrPermanent marks errors that retrying cannot fix (undecodable input).
var ErrPermanent = errors.New("permanent failure")

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
	if err == nil {
		_ = m.Ack()
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
	if p.Backoff != nil {
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
