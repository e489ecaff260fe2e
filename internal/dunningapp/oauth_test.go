package dunningapp

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
)

// Dunning reads FIC through the poller's OAuth connections, for every
// company they hold: no manual token (issue #14: dunning needed one even
// when the poller used OAuth, and one token cannot serve many companies).
func TestDunningUsesThePollersOAuthConnections(t *testing.T) {
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 4, Companies: 2, Invoices: 40})
	ns, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i + 1)
	}
	tokens, err := kvstore.NewTokens(ctx, js, key, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// The poller's `connect`: one authorization, both companies.
	tok := ficsimtest.Authorize(t, fsrv.URL)
	if _, err := tokens.Put(ctx, "studio-rossi", kvstore.Connection{Token: tok, Companies: sim.CompanyIDs()}, 0); err != nil {
		t.Fatal(err)
	}

	mb, smtpPort := startSMTP(t)
	_, now := businessMorning()
	_, logs := runService(t, now, "NATS_URL="+ns.ClientURL(), "FIC_BASE_URL="+fsrv.URL,
		"FIC_CLIENT_ID=ficsim-client", "FIC_CLIENT_SECRET=ficsim-secret", "INCASSO_SECRET_KEY="+hex.EncodeToString(key),
		"SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", smtpPort), "SMTP_TLS=none", "DUNNING_POLICY_FILE="+catchUpStart(t),
		"DUNNING_OPS_ADDR=127.0.0.1:0", "DUNNING_OPS_TOKEN=ops-token-0123456789", "DUNNING_GROUP_DELAY=200ms")
	p, src := ledgerPoller(t, js, fsrv.URL, sim.Token(), now)
	for _, cid := range sim.CompanyIDs() {
		if _, err := p.Scan(ctx, src, cid, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Reminders of both companies, each letter signed by its own company.
	names := map[int64]string{}
	cos, _ := src.Client.ListUserCompanies(ctx)
	for _, c := range cos {
		names[c.ID] = c.Name
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mb.mu.Lock()
		all := strings.Join(mb.msgs, "\n")
		mb.mu.Unlock()
		both := true
		for _, n := range names {
			both = both && strings.Contains(all, n)
		}
		if both {
			if strings.Contains(logs.String(), "no FIC connection") {
				t.Fatalf("a company without its connection:\n%s", logs.String())
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no reminders from both companies %v in 30s\n%s", names, logs.String())
}
