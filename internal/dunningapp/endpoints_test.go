package dunningapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/natstest"
)

// A platform registers an endpoint with the CLI, gets the service's events
// over HTTP signed with the secret shown once, reads the delivery log,
// sends itself a test event and rotates the secret; endpoints on the
// network Incasso runs in are refused.
func TestEndpointsEndToEnd(t *testing.T) {
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 4, Companies: 1, Invoices: 20})
	cid := sim.CompanyIDs()[0]
	ns, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	_, smtpPort := startSMTP(t)
	_, now := businessMorning()
	token := "ops-token-0123456789"
	m, logs := runService(t, now, "NATS_URL="+ns.ClientURL(), "FIC_BASE_URL="+fsrv.URL, "FIC_ACCESS_TOKEN="+sim.Token(),
		"SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", smtpPort), "SMTP_TLS=none",
		"DUNNING_OPS_ADDR=127.0.0.1:0", "DUNNING_OPS_TOKEN="+token, "DUNNING_OUTBOUND_ALLOW_NETS=127.0.0.1")
	cliEnv := []string{"DUNNING_OPS_URL=http://" + m.OpsAddr, "DUNNING_OPS_TOKEN=" + token}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := Command(ctx, append([]string{"endpoints"}, args...), cliEnv, &out, &out)
		return out.String(), err
	}

	var mu sync.Mutex
	var secret string
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil || wh.Verify(body, r.Header) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ce struct{ Type string }
		_ = json.Unmarshal(body, &ce)
		got = append(got, ce.Type)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	// Refused: private networks (the outbound guard), credentials in the
	// URL, unknown modes.
	for _, bad := range [][]string{{"add", "https://10.1.2.3/hook"}, {"add", "https://169.254.169.254/latest/meta-data"}, {"add", "https://user:pw@platform.example/h"}, {"add", recv.URL, "-mode", "xml"}} {
		if out, err := run(bad...); err == nil || !strings.Contains(err.Error(), "422") {
			t.Errorf("endpoints %v: %v\n%s", bad, err, out)
		}
	}
	out, err := run("add", recv.URL+"/incasso", "-types", "invoice.*,dunning.*", "-description", "contabilità")
	if err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	sm := regexp.MustCompile(`secret\s+(whsec_\S+)`).FindStringSubmatch(out)
	id := regexp.MustCompile(`endpoint\s+(ep_[0-9a-f]+)`).FindStringSubmatch(out)
	if sm == nil || id == nil || !strings.Contains(out, "not shown again") {
		t.Fatalf("add output:\n%s", out)
	}
	mu.Lock()
	secret = sm[1]
	mu.Unlock()
	// The list never shows a secret.
	if out, err := run(); err != nil || strings.Contains(out, "whsec_") || !strings.Contains(out, id[1]) || !strings.Contains(out, "invoice.*,dunning.*") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	waitFor(t, "the endpoint's consumer", 10*time.Second, func() bool {
		_, err := js.Consumer(ctx, "INCASSO_EVENTS", "delivery-"+id[1])
		return err == nil
	})

	// The poller's events reach the endpoint.
	p, src := ledgerPoller(t, js, fsrv.URL, sim.Token(), now)
	if _, err := p.Scan(ctx, src, cid, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "events over HTTP", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 20
	})
	if out, err := run("log", id[1], "-limit", "5"); err != nil || !strings.Contains(out, "delivered") || !strings.Contains(out, "invoice.created") || strings.Count(out, "\n") != 6 {
		t.Errorf("log: %v\n%s", err, out)
	}
	if out, err := run("test", id[1]); err != nil || !strings.Contains(out, "delivered: HTTP 204") {
		t.Errorf("test: %v\n%s", err, out)
	}
	// Rotation: the platform may keep the old secret for the grace period.
	out, err = run("rotate", id[1], "-grace", "1h")
	if err != nil || !strings.Contains(out, "new secret") || !strings.Contains(out, "keeps signing until") {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	if out, err := run("test", id[1]); err != nil {
		t.Errorf("test with the old secret during the grace period: %v\n%s", err, out)
	}
	if out, err := run("disable", id[1]); err != nil || !strings.Contains(out, "disabled: disabled by ops-token") {
		t.Errorf("disable: %v\n%s", err, out)
	}
	if out, err := run("help"); err != nil || !strings.Contains(out, "dunning endpoints replay ID") {
		t.Errorf("help: %v\n%s", err, out)
	}
	if strings.Contains(logs.String(), sm[1]) {
		t.Error("the endpoint secret appears in the logs")
	}
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
