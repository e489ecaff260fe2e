package dunning_test

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
	"github.com/incasso-io/incasso/internal/timers"
)

var benchCases = flag.Int("cases", 5000, "cases opened by BenchmarkOpenCases")

// BenchmarkOpenCases opens cases from invoice.created events on embedded
// NATS (KV case + client index + audit + a durable timer each) and reports
// cases/s and the engine process's heap after GC: the engine keeps no case
// in memory, so the heap does not grow with the number of open cases.
func BenchmarkOpenCases(b *testing.B) {
	for b.Loop() {
		_, _, js := natstest.MustRunJetStream(b)
		ctx := context.Background()
		st := openStores(b, js)
		sched, _ := timers.NewWith(ctx, js, timers.Config{Stream: "T", Subject: "incasso.dunning.timers", Consumer: "t"})
		cal, _ := calendar.New("", "")
		now := time.Date(2027, 1, 4, 10, 0, 0, 0, rcv.Rome)
		eng := &dunning.Engine{Cases: st.cases, Clients: st.clients, Outbox: st.outbox, Audit: st.audit, Outcomes: &outcomes{}, Wakeups: sched,
			Policies: policy.Default(), Calendar: cal, Now: func() time.Time { return now }}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		for i := 0; i < *benchCases; i++ {
			inv := rcv.Invoice{CompanyID: 1, ID: int64(i + 1), Kind: rcv.KindInvoice, Number: fmt.Sprint(i + 1), Date: rcv.MustDate("2026-12-01"),
				Gross: decimal.NewFromInt(1220), Client: rcv.Client{ID: int64(i%5000 + 1), Name: "Cliente"},
				Installments: []rcv.Installment{{ID: int64(i + 1), DueDate: rcv.MustDate("2027-01-31"), Amount: decimal.NewFromInt(1220), Status: rcv.NotPaid}}}
			if err := eng.HandleEvent(ctx, rcv.InvoiceCreated, inv); err != nil {
				b.Fatal(err)
			}
		}
		el := time.Since(start)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(*benchCases)/el.Seconds(), "cases/s")
		b.ReportMetric(float64(after.HeapInuse)/1e6, "heap-MB")
		b.ReportMetric(float64(*benchCases), "cases")
	}
}
