package dunningapp

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/policy"
)

// slowBox is an SMTP server that takes its time to accept a message and
// says when one has started.
type slowBox struct {
	mu      sync.Mutex
	started chan struct{}
	once    sync.Once
	n       int
	delay   time.Duration
}

type slowSess struct{ b *slowBox }

func (b *slowBox) NewSession(*smtp.Conn) (smtp.Session, error) { return slowSess{b}, nil }
func (slowSess) Mail(string, *smtp.MailOptions) error          { return nil }
func (slowSess) Rcpt(string, *smtp.RcptOptions) error          { return nil }
func (s slowSess) Data(r io.Reader) error {
	_, _ = io.ReadAll(r)
	s.b.once.Do(func() { close(s.b.started) })
	time.Sleep(s.b.delay)
	s.b.mu.Lock()
	s.b.n++
	s.b.mu.Unlock()
	return nil
}
func (slowSess) Reset()        {}
func (slowSess) Logout() error { return nil }

// A stop signal that arrives while a reminder is being sent lets the send
// finish and be recorded as sent: the old code cut it with the signal's
// context and left it "possibly sent" forever (issue #13, the in-flight
// fix; issue #14, SIGTERM during a send).
func TestStopDuringASendFinishesAndRecordsIt(t *testing.T) {
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 4, Companies: 1, Invoices: 60})
	cid := sim.CompanyIDs()[0]
	ns, _, js := natstest.MustRunJetStream(t)
	mb := &slowBox{started: make(chan struct{}), delay: 1500 * time.Millisecond}
	port := serveSMTP(t, mb)
	_, now := businessMorning()
	cfg, err := ParseConfig([]string{"NATS_URL=" + ns.ClientURL(), "FIC_BASE_URL=" + fsrv.URL, "FIC_ACCESS_TOKEN=" + sim.Token(),
		"SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", port), "SMTP_TLS=none",
		"DUNNING_OPS_ADDR=127.0.0.1:0", "DUNNING_OPS_TOKEN=ops-token-0123456789", "DUNNING_GROUP_DELAY=200ms", "DUNNING_CONCURRENCY=1",
		"DUNNING_POLICY_FILE=" + catchUpStart(t)})
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg, Log: newLogger(cfg, io.Discard), Now: now, Started: make(chan struct{})}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	<-m.Started
	p, src := ledgerPoller(t, js, fsrv.URL, sim.Token(), now)
	if _, err := p.Scan(context.Background(), src, cid, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mb.started:
	case <-time.After(30 * time.Second):
		t.Fatal("no reminder was being sent")
	}
	stop() // SIGTERM while the SMTP server is still accepting the message
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mb.mu.Lock()
	delivered := mb.n
	mb.mu.Unlock()
	if delivered == 0 {
		t.Fatal("the send in flight was cut")
	}
	cases, err := kvstore.NewCases(context.Background(), js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := cases.List(context.Background(), cid)
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, c := range all {
		for _, a := range c.Attention {
			if strings.Contains(a, "possibly sent") {
				t.Errorf("invoice %d left %q after a clean stop", c.InvoiceID, a)
			}
		}
		for _, s := range c.Sent {
			if s.Outcome == "sent" {
				sent++
			}
		}
	}
	if sent == 0 {
		t.Fatal("the delivery was not recorded as sent")
	}
}

// catchUpStart writes the default policy with catch_up: start (a backlog
// is sent without approval) and returns its path.
func catchUpStart(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	y := strings.Replace(string(policy.DefaultYAML()), "catch_up: approve", "catch_up: start", 1)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
