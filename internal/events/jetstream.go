package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/jsbatch"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// StreamName is the stream that captures every Incasso event.
const StreamName = "INCASSO_EVENTS"

// StreamConfig tunes the events stream.
type StreamConfig struct {
	Replicas int           // default 1; 3 on a cluster
	MaxAge   time.Duration // default 0: keep forever (a replayable ledger)
	// Duplicates is JetStream's dedup window for Nats-Msg-Id (default 24h):
	// a transition re-published within it (crash recovery) is dropped.
	Duplicates time.Duration
}

// EnsureStream creates or updates the events stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) (jetstream.Stream, error) {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = 24 * time.Hour
	}
	if c.MaxAge > 0 && c.Duplicates > c.MaxAge {
		c.Duplicates = c.MaxAge
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Incasso receivables and dunning events (CloudEvents, binary mode)",
		Subjects:    []string{SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxAge:      c.MaxAge,
		Duplicates:  c.Duplicates,
	})
	if err != nil {
		return nil, fmt.Errorf("events: ensure stream %s: %w", StreamName, err)
	}
	return s, nil
}

// Publisher publishes receivables transitions as CloudEvents. It is safe for
// concurrent use.
type Publisher struct {
	JS jetstream.JetStream
	// OnPublished, if set, is called per event with its type and whether
	// JetStream reported it as a duplicate.
	OnPublished func(typ string, duplicate bool)
	// OnResult, if set, is called after every publish with nil or what
	// JetStream refused (not a cancelled context): the poller's readiness
	// follows it.
	OnResult func(err error)
}

// Publish publishes the changes and waits until JetStream has stored every
// one of them (or recognised it as a duplicate). Only then may the caller
// save the snapshot.
func (p *Publisher) Publish(ctx context.Context, changes []rcv.Change) error {
	if len(changes) == 0 {
		return nil
	}
	msgs := make([]*nats.Msg, 0, len(changes))
	for _, c := range changes {
		subj, e, err := Build(c)
		if err != nil {
			return err
		}
		m, err := Encode(subj, e)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	return p.PublishMsgs(ctx, msgs)
}

// PublishEvent publishes one already-built CloudEvent (dunning outcomes).
func (p *Publisher) PublishEvent(ctx context.Context, subject string, e event.Event) error {
	m, err := Encode(subject, e)
	if err != nil {
		return err
	}
	return p.PublishMsgs(ctx, []*nats.Msg{m})
}

// PublishMsgs publishes encoded messages asynchronously and waits for all
// acknowledgements.
func (p *Publisher) PublishMsgs(ctx context.Context, msgs []*nats.Msg) error {
	err := p.publishMsgs(ctx, msgs)
	if p.OnResult != nil && ctx.Err() == nil {
		p.OnResult(err)
	}
	return err
}

func (p *Publisher) publishMsgs(ctx context.Context, msgs []*nats.Msg) error {
	if len(msgs) == 1 {
		ack, err := p.JS.PublishMsg(ctx, msgs[0])
		if err != nil {
			return fmt.Errorf("events: publish %s: %w", msgs[0].Subject, err)
		}
		p.published(msgs[0], ack.Duplicate)
		return nil
	}
	batch := make([]jsbatch.Pub, len(msgs))
	for i, m := range msgs {
		batch[i] = jsbatch.Pub{Msg: m}
	}
	acks, errs := jsbatch.PublishAll(ctx, p.JS, batch)
	var failed []error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Errorf("events: publish %s: %w", msgs[i].Subject, err))
			continue
		}
		p.published(msgs[i], acks[i].Duplicate)
	}
	return errors.Join(failed...)
}

func (p *Publisher) published(m *nats.Msg, dup bool) {
	if p.OnPublished != nil {
		p.OnPublished(m.Header.Get("ce-type"), dup)
	}
}
