package natsrv_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/events"
)

// The shipped accounts: a collection platform reads its companies' events
// and cannot read another company's, by subscription or by consumer.
func TestPlatformUserSeesOnlyItsCompanies(t *testing.T) {
	root, _ := filepath.Abs("../../deploy/nats/accounts.conf")
	t.Setenv("INCASSO_NATS_PASSWORD", "svc-secret")
	t.Setenv("GCOLLECT_NATS_PASSWORD", "platform-secret")
	t.Setenv("SYS_NATS_PASSWORD", "sys-secret")
	dir := t.TempDir()
	acc, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts.conf"), acc, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "test.conf")
	body := fmt.Sprintf("listen: 127.0.0.1:-1\njetstream { store_dir: %q }\ninclude ./accounts.conf\n", t.TempDir())
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	defer s.Shutdown()
	ctx := context.Background()

	svc, err := nats.Connect(s.ClientURL(), nats.UserInfo("incasso", "svc-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	sjs, _ := jetstream.New(svc)
	if _, err := events.EnsureStream(ctx, sjs, events.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"1000001", "1000002"} {
		if _, err := sjs.Publish(ctx, "incasso.events."+c+".invoice.created", []byte(c)); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	var violations []string
	pc, err := nats.Connect(s.ClientURL(), nats.UserInfo("gcollect", "platform-secret"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			violations = append(violations, err.Error())
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pjs, _ := jetstream.New(pc)
	// Its own company: a durable consumer works and delivers.
	cons, err := pjs.CreateOrUpdateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{Durable: "gcollect-1000001",
		FilterSubject: "incasso.events.1000001.>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("own company consumer: %v", err)
	}
	batch, err := cons.Fetch(5, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if !strings.HasPrefix(m.Subject(), "incasso.events.1000001.") {
			t.Errorf("got %s", m.Subject())
		}
		_ = m.Ack()
		n++
	}
	if n != 1 {
		t.Errorf("own company: %d messages, want 1", n)
	}
	// Refused requests get no answer: keep their wait short.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	// Another company: consumer creation is refused...
	if _, err := pjs.CreateOrUpdateConsumer(short, events.StreamName, jetstream.ConsumerConfig{Durable: "gcollect-1000002",
		FilterSubject: "incasso.events.1000002.>"}); err == nil {
		t.Error("platform created a consumer on another company's events")
	}
	// ...and so is a consumer without filter, and a plain subscription.
	short2, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if _, err := pjs.CreateOrUpdateConsumer(short2, events.StreamName, jetstream.ConsumerConfig{Durable: "gcollect-1000001"}); err == nil {
		t.Error("platform created an unfiltered consumer")
	}
	// ...nor can it pull from a consumer that is not its own (e.g. dunning's).
	if _, err := sjs.CreateOrUpdateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{Durable: "dunning", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	short3, cancel3 := context.WithTimeout(ctx, time.Second)
	defer cancel3()
	if other, err := pjs.Consumer(short3, events.StreamName, "dunning"); err == nil {
		if b, err := other.Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond)); err == nil {
			for range b.Messages() {
				t.Error("platform pulled from the dunning consumer")
			}
		}
	}
	sub, err := pc.SubscribeSync("incasso.events.1000002.>")
	if err == nil {
		_ = pc.Flush()
		time.Sleep(100 * time.Millisecond)
		if _, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			t.Error("platform read another company's subject")
		}
	}
	mu.Lock()
	seen := strings.Join(violations, ";")
	mu.Unlock()
	if !strings.Contains(seen, "Permissions Violation") {
		t.Errorf("no permission violation reported: %v", seen)
	}
	// It cannot publish events either.
	short4, cancel4 := context.WithTimeout(ctx, time.Second)
	defer cancel4()
	if _, err := pjs.Publish(short4, "incasso.events.1000001.invoice.paid", nil, jetstream.WithRetryAttempts(0)); err == nil {
		t.Error("platform published an event")
	}
}
