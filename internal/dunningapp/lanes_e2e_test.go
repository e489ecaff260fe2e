package dunningapp

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Three clients with ten invoices each whose courtesy notice is due now,
// arriving in a burst that outlasts an immediate wake: each client's first
// invoice, then, 1.5 s later, its nine others. However many lanes handle
// the events, every invoice gets its notice exactly once, each client gets
// one e-mail listing all ten (the client's quiet period, DUNNING_GROUP_DELAY,
// holds the first wake until the burst is over), nothing is flagged
// "possibly sent", and the SMTP server receives one message per Message-ID.
func TestEveryDueInvoiceGroupedOnceWhateverTheLanes(t *testing.T) {
	for _, lanes := range []int{1, 8} {
		t.Run(fmt.Sprintf("lanes=%d", lanes), func(t *testing.T) {
			sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 7, Companies: 1, Invoices: 30, Quotas: ficsim.QuotaConfig{Off: true}})
			cid := sim.CompanyIDs()[0]
			ns, _, js := natstest.MustRunJetStream(t)
			ctx := context.Background()
			mb, smtpPort := startSMTP(t)
			day, now := businessMorning()

			// Three clients of the seeded ledger, ten invoices each due in
			// three days: their courtesy notice is due today.
			docs, _ := sim.Documents(cid)
			var clients []int64
			for _, d := range docs {
				id := d.Client.ID
				if len(clients) < 3 && !containsID(clients, id) {
					clients = append(clients, id)
				}
			}
			want := map[int64]int64{} // invoice -> client
			create := func(n int) {
				for _, c := range clients {
					for range n {
						d, err := sim.CreateDocument(cid, ficsim.NewDocument{ClientID: c, Installments: 1, DueDates: []string{day.AddDays(3).String()}})
						if err != nil {
							t.Fatal(err)
						}
						want[d.ID] = c
					}
				}
			}

			_, logs := runService(t, now, "NATS_URL="+ns.ClientURL(), "FIC_BASE_URL="+fsrv.URL, "FIC_ACCESS_TOKEN="+sim.Token(),
				"SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", smtpPort), "SMTP_TLS=none",
				"DUNNING_OPS_ADDR=127.0.0.1:0", "DUNNING_OPS_TOKEN=ops-token-0123456789", fmt.Sprintf("DUNNING_CONCURRENCY=%d", lanes),
				"DUNNING_GROUP_DELAY=3s", "FIC_CLIENT_LIMITS_DISABLED=true") // this tests grouping, not the budget of freshness checks
			p, src := ledgerPoller(t, js, fsrv.URL, sim.Token(), now)
			create(1)
			if _, err := p.Scan(ctx, src, cid, nil); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond) // an immediate wake would have fired
			create(9)
			if _, err := p.Scan(ctx, src, cid, nil); err != nil {
				t.Fatal(err)
			}

			cases, err := kvstore.NewCases(ctx, js, kvstore.BucketConfig{})
			if err != nil {
				t.Fatal(err)
			}
			notified := func() int {
				n := 0
				for id := range want {
					c, _, err := cases.Get(ctx, cid, id)
					if err == nil && len(c.Sent) > 0 {
						n++
					}
				}
				return n
			}
			deadline := time.Now().Add(30 * time.Second)
			for notified() < len(want) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(time.Second) // anything sent twice would show by now

			ids := map[string]bool{} // every Message-ID sent, seeded invoices included
			perClient := map[int64]map[string]int{}
			for id, cl := range want {
				c, _, err := cases.Get(ctx, cid, id)
				if err != nil {
					t.Fatal(err)
				}
				if len(c.Attention) > 0 {
					t.Errorf("invoice %d needs attention: %v", id, c.Attention)
				}
				if len(c.Sent) != 1 || c.Sent[0].Stage != "courtesy" || c.Sent[0].Outcome != "sent" {
					t.Errorf("invoice %d (client %d): sent %+v, want one courtesy notice (wake at %s)", id, cl, c.Sent, c.WakeAt.In(rcv.Rome).Format(time.DateTime))
					continue
				}
				if perClient[cl] == nil {
					perClient[cl] = map[string]int{}
				}
				perClient[cl][c.Sent[0].MessageID]++
			}
			for cl, msgs := range perClient {
				if len(msgs) != 1 {
					t.Errorf("client %d: %d messages %v, want one listing its ten invoices", cl, len(msgs), msgs)
				}
			}
			docs, _ = sim.Documents(cid)
			for _, d := range docs {
				c, _, err := cases.Get(ctx, cid, d.ID)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range c.Sent {
					if s.Outcome == "sent" && s.Channel != "webhook" {
						ids[s.MessageID] = true
					}
				}
			}
			if got := mb.count(); got != len(ids) {
				t.Errorf("SMTP server received %d messages for %d Message-IDs", got, len(ids))
			}
			if t.Failed() {
				t.Logf("service log:\n%s", logs.String())
			}
		})
	}
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
