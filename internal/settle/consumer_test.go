package settle_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/settle"
)

// The consumer helper on a real JetStream: handled messages are acked, a
// failing one is redelivered with backoff until it succeeds, a permanent
// failure is dead-lettered and terminated, and every handler runs under
// the per-message deadline of the work context.
func TestConsumerSettlesEveryMessage(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		attempts  = map[string]int{}
		dead      []string
		deadlines []time.Duration
	)
	c := settle.Consumer{Stream: "T", Deadline: 3 * time.Second,
		Config: jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 10 * time.Second, MaxDeliver: 5},
		Policy: settle.Policy{Backoff: func(uint64, error) time.Duration { return 50 * time.Millisecond },
			DeadLetter: func(_ context.Context, m jetstream.Msg, reason string) error {
				mu.Lock()
				dead = append(dead, m.Subject()+": "+reason)
				mu.Unlock()
				return nil
			}}}
	cc, err := c.Start(ctx, ctx, js, natsrv.Retry, func(ctx context.Context, m jetstream.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[m.Subject()]++
		if d, ok := ctx.Deadline(); ok {
			deadlines = append(deadlines, time.Until(d))
		}
		switch m.Subject() {
		case "t.flaky":
			if attempts[m.Subject()] < 3 {
				return errors.New("temporarily down")
			}
		case "t.poison":
			return fmt.Errorf("%w: unreadable", settle.ErrPermanent)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	for _, s := range []string{"t.ok", "t.flaky", "t.poison"} {
		if _, err := js.Publish(ctx, s, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cons, _ := js.Consumer(ctx, "T", "d")
		info, err := cons.Info(ctx)
		if err == nil && info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages not settled: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts["t.ok"] != 1 || attempts["t.flaky"] != 3 || attempts["t.poison"] != 1 {
		t.Errorf("attempts %v", attempts)
	}
	if len(dead) != 1 || dead[0] != "t.poison: permanent failure: unreadable" {
		t.Errorf("dead letters %v", dead)
	}
	for _, d := range deadlines {
		if d <= 0 || d > 3*time.Second {
			t.Errorf("handler deadline %v, want within 3 s", d)
		}
	}
}

// A message handed off is left to its new owner: not acked, not naked,
// until the owner settles it (the webhook inbox's queue acks a
// notification only once its documents are handled).
func TestHandedOffMessageIsLeftToItsOwner(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "H", Subjects: []string{"h.>"}}); err != nil {
		t.Fatal(err)
	}
	got := make(chan jetstream.Msg, 4)
	c := settle.Consumer{Stream: "H", Config: jetstream.ConsumerConfig{Durable: "h", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second}}
	cc, err := c.Start(ctx, ctx, js, natsrv.Retry, func(_ context.Context, m jetstream.Msg) error {
		got <- m
		return settle.ErrHandedOff
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	if _, err := js.Publish(ctx, "h.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	m := <-got
	cons, _ := js.Consumer(ctx, "H", "h")
	info, _ := cons.Info(ctx)
	if info.NumAckPending != 1 {
		t.Fatalf("handed-off message: %d pending acks, want 1 (left to its owner)", info.NumAckPending)
	}
	if err := m.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	info, _ = cons.Info(ctx)
	if info.NumAckPending != 0 || len(got) != 0 {
		t.Fatalf("after the owner's ack: %d pending, %d redelivered", info.NumAckPending, len(got))
	}
}
