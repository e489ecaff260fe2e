package pollerapp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/natstest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// What the poller must not leak or claim (issue #15, point 6): the
// password in NATS_URL is not logged; /debug/pprof is served only on its
// private listener, never on the webhook listener FIC reaches; /readyz is
// not ready while JetStream refuses the events.
func TestPollerLeaksNothingAndTellsReadinessTrue(t *testing.T) {
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 3, Companies: 1, Invoices: 20, Quotas: ficsim.QuotaConfig{Off: true}})
	cid := sim.CompanyIDs()[0]
	ns, _, js := natstest.MustRunJetStream(t)
	withPassword := strings.Replace(ns.ClientURL(), "nats://", "nats://incasso:s3cret-nats-pw@", 1)
	logs := &lockedBuf{}
	m := startPoller(t, envMap{"NATS_URL": withPassword, "FIC_BASE_URL": fsrv.URL, "FIC_ACCESS_TOKEN": sim.Token(),
		"FIC_COMPANY_ID": fmt.Sprint(cid), "POLLER_HTTP_ADDR": "127.0.0.1:0", "POLLER_MIN_INTERVAL": "1s", "POLLER_MAX_INTERVAL": "1s",
		"POLLER_PPROF": "true", "POLLER_DEBUG_ADDR": "127.0.0.1:0", "FIC_CLIENT_LIMITS_DISABLED": "true", "LOG_LEVEL": "debug"}, logs)
	if strings.Contains(logs.String(), "s3cret-nats-pw") {
		t.Errorf("the NATS password is in the log:\n%s", logs.String())
	}
	if !strings.Contains(natsrv.Redact(withPassword), "xxxxx") {
		t.Errorf("Redact(%q) = %q", withPassword, natsrv.Redact(withPassword))
	}
	if code, _ := get(t, "http://"+m.HTTPAddr+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("pprof on the webhook listener: HTTP %d", code)
	}
	if code, _ := get(t, "http://"+m.DebugAddr+"/debug/pprof/"); code != http.StatusOK {
		t.Errorf("pprof on the debug listener: HTTP %d", code)
	}
	waitFor(t, "ready", 20*time.Second, func() bool { code, _ := get(t, "http://"+m.HTTPAddr+"/readyz"); return code == 200 })

	// The events stream full (no room, discard new): the next publish is
	// refused, and the replica says so.
	ctx := context.Background()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := sim.Documents(cid)
	waitFor(t, "initial sync", 20*time.Second, func() bool {
		ev := streamEvents(t, js)
		return len(ev["invoice.created"])+len(ev["credit_note.created"]) == len(docs)
	})
	info, _ := st.Info(ctx)
	full := info.Config
	full.MaxMsgs, full.Discard = int64(info.State.Msgs), jetstream.DiscardNew
	if _, err := js.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.CreateDocument(cid, ficsim.NewDocument{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "not ready while JetStream refuses events", 20*time.Second, func() bool {
		code, body := get(t, "http://"+m.HTTPAddr+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "JetStream refuses events")
	})
	full.MaxMsgs = -1
	if _, err := js.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready again once events are stored", 20*time.Second, func() bool { code, _ := get(t, "http://"+m.HTTPAddr+"/readyz"); return code == 200 })
	if strings.Contains(logs.String(), "s3cret-nats-pw") {
		t.Errorf("the NATS password is in the log")
	}
}
