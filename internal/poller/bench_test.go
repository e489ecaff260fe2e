package poller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

func benchInvoices(n int) []rcv.Invoice {
	out := make([]rcv.Invoice, n)
	for i := range out {
		due := rcv.MustDate("2026-01-31").AddDays(i % 300)
		out[i] = rcv.Invoice{CompanyID: 1, ID: int64(i + 1), Kind: rcv.KindInvoice, Number: fmt.Sprint(i), Date: due.AddDays(-30),
			Currency: "EUR", Gross: decimal.New(int64(12200+i), -2), Net: decimal.New(int64(10000+i), -2),
			Client: rcv.Client{ID: int64(i % 50), Name: "Rossi S.r.l.", VATNumber: "01234567890"},
			Installments: []rcv.Installment{
				{ID: int64(10*i + 1), DueDate: due, Amount: decimal.New(int64(6100+i), -2), Status: rcv.Paid, PaidDate: due},
				{ID: int64(10*i + 2), DueDate: due.AddDays(30), Amount: decimal.New(6100, -2), Status: rcv.NotPaid},
			}}
	}
	return out
}

// BenchmarkDiff measures the pure diff on the common case of a scan: the
// document did not change since the snapshot.
func BenchmarkDiff(b *testing.B) {
	invs := benchInvoices(4096)
	now := time.Date(2026, 6, 1, 10, 0, 0, 0, rcv.Rome)
	snaps := make([]rcv.Snapshot, len(invs))
	for i := range invs {
		_, snaps[i] = poller.Diff(nil, &invs[i], now, poller.Rules{})
	}
	b.Run("unchanged", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := i & 4095
			ch, next := poller.Diff(&snaps[k], &invs[k], now, poller.Rules{})
			if len(ch) != 0 || !poller.Equal(&snaps[k], &next) {
				b.Fatal("unexpected change")
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
	})
	b.Run("paid", func(b *testing.B) {
		paid := make([]rcv.Invoice, len(invs))
		for i := range invs {
			paid[i] = invs[i]
			paid[i].Installments = append([]rcv.Installment(nil), invs[i].Installments...)
			paid[i].Installments[1].Status, paid[i].Installments[1].PaidDate = rcv.Paid, rcv.MustDate("2026-05-30")
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := i & 4095
			if ch, _ := poller.Diff(&snaps[k], &paid[k], now, poller.Rules{}); len(ch) != 1 {
				b.Fatal("want one change")
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
	})
}

// BenchmarkScan runs a full reconciliation of one company (2,000 invoices)
// against ficsim over HTTP and embedded NATS; after the first (initial sync)
// every scan is a no-change rescan.
func BenchmarkScan(b *testing.B) {
	h := newHarnessB(b, ficsim.Config{Invoices: 2000, Quotas: ficsim.QuotaConfig{Off: true}})
	start := time.Now()
	res, err := h.p.Scan(context.Background(), h.src, h.cid, nil)
	if err != nil {
		b.Fatal(err)
	}
	initial := float64(res.Documents) / time.Since(start).Seconds()
	b.ResetTimer()
	var docs int
	for b.Loop() {
		r, err := h.p.Scan(context.Background(), h.src, h.cid, nil)
		if err != nil {
			b.Fatal(err)
		}
		docs += r.Documents
	}
	b.ReportMetric(float64(docs)/b.Elapsed().Seconds(), "rescan-docs/s")
	b.ReportMetric(initial, "initial-docs/s")
	b.ReportMetric(float64(res.Requests), "req/scan")
}
