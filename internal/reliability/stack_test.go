package reliability

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/dunningapp"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/mailcatcher"
	"github.com/incasso-io/incasso/internal/pollerapp"
)

// stack is ficsim, a mail catcher, and the poller and dunning services
// running in process against a NATS cluster (R3), scanning every second, on
// a business clock inside the send window so reminders flow.
type stack struct {
	sim    *ficsim.Server
	cid    int64
	open   []int64 // invoices with an open installment at start
	paid   map[int64]bool
	mu     sync.Mutex
	msgIDs map[string]int
}

func startStack(t *testing.T, natsURL string, seed uint64, js jetstream.JetStream) *stack {
	t.Helper()
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: seed, Companies: 1, Invoices: 120, Quotas: ficsim.QuotaConfig{Off: true}}) // closed after the cleanup below
	st := &stack{sim: sim, cid: sim.CompanyIDs()[0], paid: map[int64]bool{}, msgIDs: map[string]int{}}
	clock := calendar.DemoClock("send-window")
	today := time.Now()
	if clock != nil {
		today = clock()
	}
	// Invoices due in two days: their courtesy notices are due now.
	for i := 0; i < 3; i++ {
		if _, err := sim.CreateDocument(st.cid, ficsim.NewDocument{Installments: 1, DueDates: []string{today.AddDate(0, 0, 2).Format(time.DateOnly)}}); err != nil {
			t.Fatal(err)
		}
	}
	catcher := &mailcatcher.Catcher{OnMessage: func(m mailcatcher.Message) {
		for _, l := range strings.Split(m.Raw, "\n") {
			if strings.HasPrefix(strings.ToLower(l), "message-id:") {
				st.mu.Lock()
				st.msgIDs[strings.TrimSpace(l[11:])]++
				st.mu.Unlock()
			}
		}
	}}
	sln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = catcher.ServeSMTP(sln) }()
	pcfg, err := pollerapp.ParseConfig([]string{"NATS_URL=" + natsURL, "INCASSO_REPLICAS=3", "FIC_BASE_URL=" + srv.URL,
		"FIC_ACCESS_TOKEN=" + sim.Token(), fmt.Sprintf("FIC_COMPANY_ID=%d", st.cid), "POLLER_HTTP_ADDR=127.0.0.1:0",
		"POLLER_MIN_INTERVAL=1s", "POLLER_MAX_INTERVAL=1s", "POLLER_LEASE_TTL=3s", "FIC_CLIENT_LIMITS_DISABLED=true"})
	if err != nil {
		t.Fatal(err)
	}
	dcfg, err := dunningapp.ParseConfig([]string{"NATS_URL=" + natsURL, "INCASSO_REPLICAS=3", "FIC_BASE_URL=" + srv.URL,
		"FIC_ACCESS_TOKEN=" + sim.Token(), "SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", sln.Addr().(*net.TCPAddr).Port),
		"SMTP_TLS=none", "DUNNING_OPS_ADDR=127.0.0.1:0", "DUNNING_OPS_TOKEN=reliability-test-ops-token", "DUNNING_GROUP_DELAY=1s"})
	if err != nil {
		t.Fatal(err)
	}
	logs := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{
		(&pollerapp.Main{Config: pcfg, Log: logs, Now: clock}).Run,
		(&dunningapp.Main{Config: dcfg, Log: logs, Now: clock}).Run,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				t.Logf("service stopped: %v", err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait(); catcher.Close() })
	docs, _ := sim.Documents(st.cid)
	for _, d := range docs {
		if d.Type == "invoice" && d.Open() {
			st.open = append(st.open, d.ID)
		}
	}
	if len(st.open) < 16 {
		t.Fatalf("only %d open invoices", len(st.open))
	}
	waitFor(t, 90*time.Second, "initial sync", func() bool {
		ids, _, err := readStream(context.Background(), js)
		return err == nil && len(ids) >= len(docs)
	})
	return st
}

// pay pays invoices and waits until every invoice paid so far has its
// payment event; it returns how long detection took.
func (st *stack) pay(t *testing.T, js jetstream.JetStream, ids []int64, phase string) time.Duration {
	t.Helper()
	start := time.Now()
	for _, id := range ids {
		if _, err := st.sim.Pay(st.cid, id, ficsim.PaymentSpec{}); err != nil {
			t.Fatal(err)
		}
		st.paid[id] = true
	}
	waitFor(t, 90*time.Second, "payments "+phase, func() bool {
		_, keys, err := readStream(context.Background(), js)
		if err != nil {
			return false // the cluster is electing a leader: read again
		}
		p := paymentsIn(keys)
		for id := range st.paid {
			if p[id] == 0 {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

// check waits for a reminder, lets scans run, then verifies: every payment
// stored once, no event id twice, no reminder twice. It returns the figures.
func (st *stack) check(t *testing.T, js jetstream.JetStream) (events, dupIDs, dupPay, mails, dupMails int) {
	t.Helper()
	// A reminder comes once the cluster serves KV again: after a healed
	// partition JetStream may take a minute, and a timer that failed in
	// the meantime is redelivered with backoff.
	waitFor(t, 90*time.Second, "a reminder", func() bool { st.mu.Lock(); defer st.mu.Unlock(); return len(st.msgIDs) > 0 })
	time.Sleep(2 * time.Second) // further scans must not duplicate anything
	ids, keys := stored(t, js)
	for _, n := range ids {
		if n > 1 {
			dupIDs++
		}
	}
	p := paymentsIn(keys)
	for id := range st.paid {
		if p[id] != 1 {
			dupPay++
			t.Errorf("invoice %d: %d payment events, want 1", id, p[id])
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for id, n := range st.msgIDs {
		if n > 1 {
			dupMails++
			t.Errorf("reminder %s sent %d times", id, n)
		}
	}
	if dupIDs > 0 {
		t.Errorf("%d event ids stored more than once", dupIDs)
	}
	return len(ids), dupIDs, dupPay, len(st.msgIDs), dupMails
}
