package dunningapp

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/events"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Work of one key runs in submission order, never two at once; work of
// different keys runs in parallel; close waits for everything queued.
func TestLanesKeepPerKeyOrder(t *testing.T) {
	l := newLanes(4)
	const keys, per = 20, 50
	var (
		mu      sync.Mutex
		seen    = map[string][]int{}
		running = map[string]bool{}
		maxPar  atomic.Int32
		par     atomic.Int32
	)
	for i := 0; i < per; i++ {
		for k := 0; k < keys; k++ {
			key, i := fmt.Sprintf("1/invoices/%d", k), i
			l.submit(key, func() {
				mu.Lock()
				if running[key] {
					t.Errorf("%s: two at once", key)
				}
				running[key] = true
				mu.Unlock()
				if n := par.Add(1); n > maxPar.Load() {
					maxPar.Store(n)
				}
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
				par.Add(-1)
				mu.Lock()
				running[key] = false
				seen[key] = append(seen[key], i)
				mu.Unlock()
			})
		}
	}
	l.close()
	for k := 0; k < keys; k++ {
		got := seen[fmt.Sprintf("1/invoices/%d", k)]
		if len(got) != per {
			t.Fatalf("key %d: %d runs, want %d", k, len(got), per)
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("key %d: run %d was submitted as %d: out of order", k, i, v)
			}
		}
	}
	if maxPar.Load() < 2 {
		t.Errorf("never more than %d at once: lanes did not run in parallel", maxPar.Load())
	}
}

// The lane key of real encoded events: every event type of one invoice
// shares a lane; another invoice or company gets another key.
func TestLaneKeyIsTheDocument(t *testing.T) {
	key := func(cid, id int64, typ rcv.EventType) string {
		t.Helper()
		inv := rcv.Invoice{CompanyID: cid, ID: id, Kind: rcv.KindInvoice, Number: "1", Currency: "EUR",
			Date: rcv.MustDate("2026-11-02"), Gross: decimal.NewFromInt(100), Net: decimal.NewFromInt(82)}
		subj, e, err := events.Build(rcv.Change{Type: typ, Seq: 1, Invoice: inv, At: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		m, err := events.Encode(subj, e)
		if err != nil {
			t.Fatal(err)
		}
		return laneKey(m.Header)
	}
	created, paid := key(1, 42, rcv.InvoiceCreated), key(1, 42, rcv.InvoicePaid)
	if created != paid {
		t.Errorf("created and paid of one invoice: keys %q and %q, want one lane", created, paid)
	}
	if created != "/fic/companies/1 invoices/42" {
		t.Errorf("key %q, want company and document", created)
	}
	if k := key(1, 43, rcv.InvoiceCreated); k == created {
		t.Errorf("another invoice shares key %q", k)
	}
	if k := key(2, 42, rcv.InvoiceCreated); k == created {
		t.Errorf("another company shares key %q", k)
	}
}

// A consumer that outlives its drain (NATS unreachable at stop) cannot
// submit into closed lanes: submit refuses, and the caller hands the
// message back (it used to panic: send on closed channel).
func TestSubmitAfterCloseIsRefused(t *testing.T) {
	l := newLanes(2)
	ran := 0
	if !l.submit("a", func() { ran++ }) {
		t.Fatal("refused before close")
	}
	l.close()
	if l.submit("a", func() { ran++ }) {
		t.Fatal("accepted after close")
	}
	l.close() // twice is fine
	if ran != 1 {
		t.Fatalf("ran %d", ran)
	}
}
