package poller_test

import (
	"context"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/fic/filter"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Polling without webhooks at 5,000 open invoices: a scan of open invoices
// only (q = next_due_date is not null) plus one GET per invoice that left
// the list finds every payment in the next scan, and costs a fraction of a
// full scan, so the budget allows a much shorter interval.
func TestOpenOnlyScanDetectsPaymentsWithFewRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("large scan skipped with -short")
	}
	// A ledger of 9,500 invoices of the last 300 days, the older ones mostly
	// paid: about 5,000 with an open installment.
	h := newHarness(t, ficsim.Config{Invoices: 9500, Quotas: ficsim.QuotaConfig{Off: true}})
	openOnly := &fic.Source{Client: h.src.Client, Filter: func(k rcv.Kind) fic.ListOptions {
		if k == rcv.KindCreditNote {
			return fic.ListOptions{Type: fic.TypeCreditNote}
		}
		return fic.ListOptions{Type: fic.TypeInvoice, Query: filter.Where("next_due_date", filter.IsNotNull, nil)}
	}}
	h.p.OpenOnly = true
	ctx := context.Background()
	if _, err := h.p.Scan(ctx, openOnly, h.cid, nil); err != nil {
		t.Fatal(err)
	}
	docs, _ := h.sim.Documents(h.cid)
	var open []int64
	for _, d := range docs {
		if d.Type == "invoice" && d.Open() {
			open = append(open, d.ID)
		}
	}
	// Full-scan cost for comparison.
	h.sim.ResetStats()
	if _, err := h.p.Scan(ctx, h.src, h.cid, nil); err != nil {
		t.Fatal(err)
	}
	full := h.sim.Stats()[h.cid]["list_issued_documents"]
	h.p.OpenOnly = true
	// 40 invoices get paid in full between two scans.
	before := len(h.published()["invoice.paid"])
	for _, id := range open[:40] {
		ficsimtest.PayInFull(t, h.sim, h.cid, id)
	}
	h.sim.ResetStats()
	res, err := h.p.Scan(ctx, openOnly, h.cid, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := h.sim.Stats()[h.cid]
	got := h.published()
	if n := len(got["invoice.paid"]) - before; n != 40 {
		t.Fatalf("payments detected in the next scan: %d, want 40", n)
	}
	if n := len(got["invoice.deleted"]); n != 0 {
		t.Fatalf("%d false deletions", n)
	}
	reqs := st["list_issued_documents"] + st["get_issued_document"] + st["list_bin_issued_documents"]
	mid := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	unknown := poller.QuotaView{HourlyLimit: -1, MonthlyRemaining: -1, MonthlyLimit: -1}
	iFull := poller.Budget{}.Interval(full, mid, unknown)
	iOpen := poller.Budget{}.Interval(reqs, mid, unknown)
	t.Logf("%d open invoices: full scan %d requests (interval %v at 50%% of the quota); open-only scan %d requests (%d pages, %d GETs, %d bin) -> interval %v; 40/40 payments detected in the next scan",
		len(open), full, iFull.Round(time.Minute), reqs, st["list_issued_documents"], st["get_issued_document"], st["list_bin_issued_documents"], iOpen.Round(time.Minute))
	if reqs >= full {
		t.Errorf("open-only scan (%d requests) is not cheaper than a full scan (%d)", reqs, full)
	}
	_ = res
}
