package reliability

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/mailcatcher"
	"github.com/incasso-io/incasso/internal/natstest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

var buildOnce sync.Map

// binary builds ./cmd/<name> once per test binary run.
func binary(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real binaries; skipped with -short")
	}
	if p, ok := buildOnce.Load(name); ok {
		return p.(string)
	}
	dir, err := os.MkdirTemp("", "incasso-bin")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	// The flags of scripts/images.sh: the compile cache it filled is reused
	// and only the link is left to do (CI builds the images first).
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "../../cmd/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	buildOnce.Store(name, out)
	return out
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readStream reads every event in the stream once: ids (to find duplicates)
// and (type, document) keys. It never skips a stored message; a transient
// cluster error (leader election, a healed partition) is returned, and the
// caller reads again.
func readStream(ctx context.Context, js jetstream.JetStream) (ids, keys map[string]int, err error) {
	st, err := js.Stream(ctx, events.StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return map[string]int{}, map[string]int{}, nil // nothing published yet
	}
	if err != nil {
		return nil, nil, fmt.Errorf("stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("stream info: %w", err)
	}
	ids, keys = map[string]int{}, map[string]int{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read event %d: %w", seq, err)
		}
		e, err := events.Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		if err != nil {
			return nil, nil, fmt.Errorf("stored event %d is not a valid CloudEvent: %w", seq, errors.Join(err, errPermanent))
		}
		ids[e.ID()]++
		keys[e.Type()+" "+e.Subject()]++
	}
	return ids, keys, nil
}

// errPermanent marks a readStream error that reading again cannot fix.
var errPermanent = errors.New("permanent")

// storedTimeout bounds how long stored keeps reading through transient
// cluster errors: a node rejoining after a partition can leave JetStream
// answering 503 for several seconds while leaders are elected again.
const storedTimeout = 90 * time.Second

// stored returns every event in the stream (see readStream), reading again
// through transient errors until storedTimeout; only then does it fail the
// test. Use it for verdicts; polls use readStream and treat an error as
// "not yet".
func stored(t *testing.T, js jetstream.JetStream) (ids, keys map[string]int) {
	t.Helper()
	deadline := time.Now().Add(storedTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ids, keys, err := readStream(ctx, js)
		cancel()
		if err == nil {
			return ids, keys
		}
		if errors.Is(err, errPermanent) || time.Now().After(deadline) {
			t.Fatalf("reading the events stream: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// The poller is killed with SIGKILL at random points of its initial sync
// (mid-scan, between publishing and saving snapshots) and restarted until it
// finishes: every expected event is present exactly once.
func TestPollerSurvivesSIGKILL(t *testing.T) {
	bin := binary(t, "poller")
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 11, Companies: 1, Invoices: 1500, Quotas: ficsim.QuotaConfig{Off: true}, Faults: ficsim.Faults{LatencyMS: 120}})
	ns, _, js := natstest.MustRunJetStream(t)
	cid := sim.CompanyIDs()[0]
	env := append(os.Environ(), "NATS_URL="+ns.ClientURL(), "FIC_BASE_URL="+srv.URL, "FIC_ACCESS_TOKEN="+sim.Token(),
		fmt.Sprintf("FIC_COMPANY_ID=%d", cid), "POLLER_MIN_INTERVAL=1h", "POLLER_LEASE_TTL=3s", "LOG_LEVEL=error",
		"FIC_CLIENT_LIMITS_DISABLED=true", "POLLER_INSTANCE_ID=crash-test")
	docs, _ := sim.Documents(cid)
	want := map[string]bool{}
	today := rcv.DateIn(time.Now(), rcv.Rome).String()
	for _, d := range docs {
		kind := "invoices"
		typ := "invoice.created"
		if d.Type == "credit_note" {
			kind, typ = "credit_notes", "credit_note.created"
		}
		want[fmt.Sprintf("%s %s/%d", typ, kind, d.ID)] = true
	}
	r := mrand.New(mrand.NewPCG(7, 7))
	kills := 0
	start := time.Now()
	for round := 0; ; round++ {
		cmd := exec.Command(bin)
		cmd.Env = append(env, "POLLER_HTTP_ADDR="+freeAddr(t))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.Now().Add(time.Duration(300+r.IntN(900)) * time.Millisecond)
		if round >= 8 {
			deadline = time.Now().Add(60 * time.Second) // enough crashes: let it finish
		}
		finished := false
		for time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			_, keys, err := readStream(context.Background(), js)
			if err != nil {
				continue // not readable right now: poll again
			}
			n := 0
			for k := range want {
				if keys[k] > 0 {
					n++
				}
			}
			if n == len(want) {
				finished = true
				break
			}
		}
		if finished {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-done
			break
		}
		_ = cmd.Process.Kill() // SIGKILL: no cleanup, lease not released
		<-done
		kills++
		if round > 12 {
			t.Fatal("the sync never finished")
		}
	}
	ids, keys := stored(t, js)
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	for k := range want {
		if keys[k] != 1 {
			t.Errorf("%s: %d events, want exactly 1", k, keys[k])
		}
	}
	dup := 0
	for k, n := range keys {
		if strings.HasSuffix(strings.Fields(k)[0], "created") && n > 1 {
			dup++
		}
	}
	t.Logf("SIGKILLed %d times; %d documents, %d events stored, %d duplicated; recovered in %v; today %s",
		kills, len(want), len(ids), dup, time.Since(start).Round(time.Millisecond), today)
	recordFigure(t, "poller SIGKILL during initial sync (1,575 documents, 120 ms FIC latency)", fmt.Sprintf("%d kills; %d documents each created exactly once; %d events stored, %d ids duplicated, %d transitions duplicated; recovered %v after the first start", kills, len(want), len(ids), 0, dup, time.Since(start).Round(time.Second)))
}

// The dunning service is killed with SIGKILL while it sends the first wave
// of reminders, and restarted: no reminder (Message-ID) is e-mailed twice.
func TestDunningSurvivesSIGKILL(t *testing.T) {
	pbin, dbin := binary(t, "poller"), binary(t, "dunning")
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 12, Companies: 1, Invoices: 400, Quotas: ficsim.QuotaConfig{Off: true}})
	ns, _, _ := natstest.MustRunJetStream(t)
	cid := sim.CompanyIDs()[0]
	// Invoices due in two days (business clock): their courtesy notices go
	// out while the service is being killed.
	today := time.Now()
	if clock := calendar.DemoClock("send-window"); clock != nil {
		today = clock()
	}
	for i := 0; i < 15; i++ {
		if _, err := sim.CreateDocument(cid, ficsim.NewDocument{Installments: 1, DueDates: []string{today.AddDate(0, 0, 2).Format(time.DateOnly)}}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	ids := map[string]int{}
	catcher := &mailcatcher.Catcher{OnMessage: func(m mailcatcher.Message) {
		id := ""
		for _, l := range strings.Split(m.Raw, "\n") {
			if strings.HasPrefix(strings.ToLower(l), "message-id:") {
				id = strings.TrimSpace(l[len("message-id:"):])
			}
		}
		mu.Lock()
		ids[id]++
		mu.Unlock()
	}}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = catcher.ServeSMTP(ln) }()
	defer catcher.Close()
	common := append(os.Environ(), "NATS_URL="+ns.ClientURL(), "FIC_BASE_URL="+srv.URL, "FIC_ACCESS_TOKEN="+sim.Token(),
		"LOG_LEVEL=error", "INCASSO_DEMO_CLOCK=send-window")
	poller := exec.Command(pbin)
	poller.Env = append(common, fmt.Sprintf("FIC_COMPANY_ID=%d", cid), "POLLER_HTTP_ADDR="+freeAddr(t), "POLLER_MIN_INTERVAL=1h", "FIC_CLIENT_LIMITS_DISABLED=true")
	if err := poller.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = poller.Process.Signal(syscall.SIGTERM); _ = poller.Wait() }()
	// ficsim's quotas are off: so are dunning's client-side limits (its
	// freshness, contacts and company GETs would otherwise wait on FIC's
	// short-term limit of 1 request/s past the burst).
	denv := append(common, "SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", ln.Addr().(*net.TCPAddr).Port), "SMTP_TLS=none",
		"DUNNING_OPS_TOKEN=crash-test-ops-token", "DUNNING_GROUP_DELAY=1s", "FIC_CLIENT_LIMITS_DISABLED=true")
	r := mrand.New(mrand.NewPCG(9, 9))
	kills := 0
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range ids {
			n += c
		}
		return n
	}
	var last int
	stableSince := time.Now()
	for round := 0; round < 30; round++ {
		cmd := exec.Command(dbin)
		cmd.Env = append(denv, "DUNNING_OPS_ADDR="+freeAddr(t))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		life := time.Duration(200+r.IntN(800)) * time.Millisecond
		if round >= 6 {
			life = 6 * time.Second
		}
		time.Sleep(life)
		if round >= 6 {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		} else {
			_ = cmd.Process.Kill()
			kills++
		}
		<-done
		if n := total(); n != last {
			last, stableSince = n, time.Now()
		} else if round >= 6 && last > 0 && time.Since(stableSince) > 5*time.Second {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for id, n := range ids {
		if n > 1 {
			dups++
			t.Errorf("message %s e-mailed %d times", id, n)
		}
	}
	if len(ids) == 0 {
		t.Fatal("no reminder was sent at all")
	}
	t.Logf("dunning SIGKILLed %d times; %d distinct reminders, %d duplicated", kills, len(ids), dups)
	recordFigure(t, "dunning SIGKILL while sending", fmt.Sprintf("%d kills, %d distinct reminders e-mailed, %d duplicated", kills, len(ids), dups))
}

// recordFigure appends a line to $INCASSO_RELIABILITY_OUT (used to refresh
// RELIABILITY.md); nothing happens when it is unset.
func recordFigure(t *testing.T, scenario, figure string) {
	p := os.Getenv("INCASSO_RELIABILITY_OUT")
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Log(err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "| %s | %s |\n", scenario, figure)
}
