package settle_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/settle"
)

func TestSettle(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 3})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	dead := map[string]string{}
	pol := settle.Policy{MaxDeliver: 3, Backoff: func(uint64, error) time.Duration { return 10 * time.Millisecond },
		DeadLetter: func(_ context.Context, m jetstream.Msg, reason string) error {
			mu.Lock()
			dead[m.Subject()] = reason
			mu.Unlock()
			return nil
		}}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		mu.Lock()
		attempts[m.Subject()]++
		n := attempts[m.Subject()]
		mu.Unlock()
		var herr error
		switch m.Subject() {
		case "s.flaky":
			if n < 2 {
				herr = errors.New("transient")
			}
		case "s.broken":
			herr = errors.New("always failing")
		case "s.poison":
			herr = fmt.Errorf("%w: undecodable", settle.ErrPermanent)
		}
		pol.Settle(ctx, m, herr)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	for _, s := range []string{"s.ok", "s.flaky", "s.broken", "s.poison"} {
		if _, err := js.Publish(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		done := len(dead) == 2 && attempts["s.flaky"] == 2
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{"s.ok": 1, "s.flaky": 2, "s.broken": 3, "s.poison": 1}
	for s, n := range want {
		if attempts[s] != n {
			t.Errorf("%s: %d attempts, want %d", s, attempts[s], n)
		}
	}
	if dead["s.broken"] != "always failing" || dead["s.poison"] == "" || len(dead) != 2 {
		t.Errorf("dead letters: %v", dead)
	}
}
