package dunningapp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Two dunning replicas share the events, on a three-node cluster. Each invoice's four events
// (created, then three updates of its amount) are published interleaved
// with the other invoices', so that one invoice's events reach both
// replicas at once. Each invoice must end with the state of its last
// event: applied out of order, an earlier update overwrote a later one
// (the flapping of issue #19).
func TestTwoReplicasApplyEachInvoiceInOrder(t *testing.T) {
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 9, Companies: 1, Invoices: 1, Quotas: ficsim.QuotaConfig{Off: true}})
	cid := sim.CompanyIDs()[0]
	urls, _, js := natstest.MustRunCluster(t, 3) // streams and buckets at R3, as in production
	ctx := context.Background()
	_, smtpPort := startSMTP(t)
	_, now := businessMorning()
	env := []string{"NATS_URL=" + strings.Join(urls, ","), "INCASSO_REPLICAS=3", "FIC_BASE_URL=" + fsrv.URL, "FIC_ACCESS_TOKEN=" + sim.Token(),
		"SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", smtpPort), "SMTP_TLS=none",
		"DUNNING_OPS_ADDR=127.0.0.1:0", "DUNNING_OPS_TOKEN=ops-token-0123456789", "LOG_LEVEL=debug"}
	if _, err := events.EnsureStream(ctx, js, events.StreamConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	_, logsA := runService(t, now, env...)
	_, logsB := runService(t, now, env...)

	const docs, steps = 150, 4
	pub := &events.Publisher{JS: js}
	inv := func(id int64, step int) rcv.Invoice {
		amount := decimal.NewFromInt(int64(step) * 100)
		return rcv.Invoice{CompanyID: cid, ID: id, Kind: rcv.KindInvoice, Number: fmt.Sprint(id), Currency: "EUR",
			Date: rcv.MustDate("2026-11-02"), Gross: amount, Net: amount,
			Client:       rcv.Client{ID: 1, Name: "Cliente di prova", Email: "cliente@example.com"},
			Installments: []rcv.Installment{{ID: id, DueDate: rcv.MustDate("2027-06-30"), Amount: amount, Status: rcv.NotPaid}}}
	}
	for step := 1; step <= steps; step++ {
		var batch []rcv.Change
		for d := range docs {
			typ := rcv.InvoiceUpdated
			if step == 1 {
				typ = rcv.InvoiceCreated
			}
			batch = append(batch, rcv.Change{Type: typ, Seq: uint64(step), Invoice: inv(5_000_000+int64(d), step), At: time.Now()})
		}
		if err := pub.Publish(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}

	cases, err := kvstore.NewCases(ctx, js, kvstore.BucketConfig{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	order, err := kvstore.NewOrder(ctx, js, kvstore.BucketConfig{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := decimal.NewFromInt(steps * 100)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) { // until the shared consumer has nothing left
		ci, err := js.Consumer(ctx, events.StreamName, "dunning")
		if err == nil {
			info, err := ci.Info(ctx)
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	wrong := 0
	for d := range docs {
		id := 5_000_000 + int64(d)
		c, rev, err := cases.Get(ctx, cid, id)
		if err != nil || rev == 0 {
			t.Fatalf("invoice %d: no case (%v)", id, err)
		}
		if !c.Invoice.Gross.Equal(want) {
			wrong++
			if wrong <= 5 {
				t.Errorf("invoice %d ends at %s, want %s (its last event's): its events were applied out of order", id, c.Invoice.Gross, want)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d invoices out of order", wrong, docs)
	}
	for d := range docs {
		if st, _ := order.State(ctx, cid, 5_000_000+int64(d)); st.Seq != steps || !st.Done {
			t.Errorf("invoice %d: record %+v, want event %d applied", 5_000_000+int64(d), st, steps)
			break
		}
	}
	// Both replicas did part of the work.
	a, b := strings.Count(logsA.String(), `event applied`), strings.Count(logsB.String(), `event applied`)
	if a+b != docs*steps || a == 0 || b == 0 {
		t.Errorf("replica a applied %d events, b %d; want %d between them, both some", a, b, docs*steps)
	}
	t.Logf("replica a applied %d events, b %d", a, b)
	if t.Failed() {
		t.Logf("replica a:\n%s\nreplica b:\n%s", logsA, logsB)
	}
}
