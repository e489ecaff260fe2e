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
	s := serveConfig(t, "../../deploy/nats/accounts.conf", "include ./accounts.conf")
	ctx := context.Background()

	svc, err := nats.Connect(s.ClientURL(), nats.UserInfo("poller", "poller-secret"))
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

// serveConfig runs a nats-server on a configuration that includes the
// shipped file (copied beside it), with the passwords in the environment.
func serveConfig(t *testing.T, shipped, include string) *server.Server {
	t.Helper()
	for k, v := range map[string]string{"POLLER_NATS_PASSWORD": "poller-secret", "DUNNING_NATS_PASSWORD": "dunning-secret",
		"GCOLLECT_NATS_PASSWORD": "platform-secret", "SYS_NATS_PASSWORD": "sys-secret"} {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	b, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(shipped)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "test.conf")
	body := fmt.Sprintf("listen: 127.0.0.1:-1\njetstream { store_dir: %q }\n%s\n", t.TempDir(), include)
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
	t.Cleanup(s.Shutdown)
	return s
}

// The shipped service users (compose; the same users in accounts.conf for
// Kubernetes): nobody gets in without a password, and neither service can
// forge the other's events or write its state (issue #15, point 2: anyone
// reaching the port could publish a forged invoice.deleted).
func TestServiceUsersCannotForgeEachOthersEvents(t *testing.T) {
	for _, shipped := range []struct{ file, include string }{
		{"../../deploy/compose/services.conf", "include ./services.conf"},
		{"../../deploy/nats/accounts.conf", "include ./accounts.conf"},
	} {
		t.Run(filepath.Base(shipped.file), func(t *testing.T) {
			s := serveConfig(t, shipped.file, shipped.include)
			ctx := context.Background()
			if nc, err := nats.Connect(s.ClientURL()); err == nil {
				nc.Close()
				t.Fatal("a client without a password got in")
			}
			connect := func(user, pw string) jetstream.JetStream {
				nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, pw))
				if err != nil {
					t.Fatalf("%s: %v", user, err)
				}
				t.Cleanup(nc.Close)
				js, _ := jetstream.New(nc)
				return js
			}
			poller, dunning := connect("poller", "poller-secret"), connect("dunning", "dunning-secret")
			if _, err := events.EnsureStream(ctx, poller, events.StreamConfig{}); err != nil {
				t.Fatal(err)
			}
			try := func(js jetstream.JetStream, subject string) error {
				c, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				_, err := js.Publish(c, subject, []byte("{}"), jetstream.WithRetryAttempts(0))
				return err
			}
			for _, tc := range []struct {
				who     string
				js      jetstream.JetStream
				subject string
				ok      bool
			}{
				{"poller", poller, "incasso.events.1000001.invoice.created", true},
				{"dunning", dunning, "incasso.events.1000001.dunning.reminder_sent", true},
				{"dunning", dunning, "incasso.events.1000001.invoice.deleted", false},
				{"dunning", dunning, "incasso.events.1000001.credit_note.created", false},
				{"poller", poller, "incasso.events.1000001.dunning.closed", false},
			} {
				if err := try(tc.js, tc.subject); (err == nil) != tc.ok {
					t.Errorf("%s publishing %s: %v, want allowed=%v", tc.who, tc.subject, err, tc.ok)
				}
			}
			// State: each writes its own buckets, not the other's.
			snaps, err := poller.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "incasso_snapshots"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := snaps.Put(ctx, "1.1", []byte("{}")); err != nil {
				t.Fatalf("poller writing its snapshots: %v", err)
			}
			theirs, err := dunning.KeyValue(ctx, "incasso_snapshots")
			if err != nil {
				t.Fatal(err)
			}
			c, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if _, err := theirs.Put(c, "1.1", []byte(`{"deleted":true}`)); err == nil {
				t.Error("dunning wrote the poller's snapshots")
			}
			cases, err := dunning.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "incasso_cases"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cases.Put(ctx, "1.1", []byte("{}")); err != nil {
				t.Fatalf("dunning writing its cases: %v", err)
			}
			pc, _ := poller.KeyValue(ctx, "incasso_cases")
			c2, cancel2 := context.WithTimeout(ctx, time.Second)
			defer cancel2()
			if _, err := pc.Put(c2, "1.1", []byte(`{"state":"closed"}`)); err == nil {
				t.Error("the poller wrote dunning's cases")
			}
		})
	}
}
