package poller_test

import (
	"context"
	"errors"
	"iter"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/memstore"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// memSource is a company of two invoices that records when each request
// was made; fail, if set, answers request n (from 0) with an error.
type memSource struct {
	mu    sync.Mutex
	calls []time.Time
	fail  func(n int) error
}

func (s *memSource) request() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.calls)
	s.calls = append(s.calls, time.Now())
	if s.fail != nil {
		return s.fail(n)
	}
	return nil
}

func (s *memSource) Pages(_ context.Context, cid int64, kind rcv.Kind) iter.Seq2[rcv.Page, error] {
	return func(yield func(rcv.Page, error) bool) {
		if err := s.request(); err != nil {
			yield(rcv.Page{Number: 1}, err)
			return
		}
		var invs []rcv.Invoice
		if kind == rcv.KindInvoice {
			for id := int64(1); id <= 2; id++ {
				invs = append(invs, rcv.Invoice{CompanyID: cid, ID: id, Kind: kind, Number: "1", Date: rcv.MustDate("1999-12-01"),
					Gross: decimal.NewFromInt(100), Installments: []rcv.Installment{{ID: id, DueDate: rcv.MustDate("2000-06-30"), Amount: decimal.NewFromInt(100), Status: rcv.NotPaid}}})
			}
		}
		yield(rcv.Page{Number: 1, LastPage: 1, Invoices: invs}, nil)
	}
}

func (s *memSource) Invoice(context.Context, int64, int64) (rcv.Invoice, error) {
	return rcv.Invoice{}, rcv.ErrNotFound
}

func (s *memSource) Bin(context.Context, int64) ([]int64, error) { return nil, nil }

func (s *memSource) requests() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.calls...)
}

type countPublisher struct {
	mu sync.Mutex
	n  int
}

func (c *countPublisher) Publish(_ context.Context, ch []rcv.Change) error {
	c.mu.Lock()
	c.n += len(ch)
	c.mu.Unlock()
	return nil
}

// The runner paces a company's scans by the quota budget, exactly: each
// scan (two requests: a page of invoices, one of credit notes) waits what
// Budget.Interval allows at that instant, a day of scans stays within the
// budget's share of the monthly quota, a failed scan is retried after the
// minimum interval, and a quota 403 pauses the company until FIC's reset
// (plus a second) with no request in between. Time is the synctest
// bubble's: a day passes in milliseconds.
func TestRunnerPacesScansByTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &memSource{}
		pub := &countPublisher{}
		var budget poller.Budget
		r := &poller.Runner{
			Poller: &poller.Poller{Snapshots: &memstore.Snapshots{}, Publisher: pub},
			Budget: budget,
			Companies: func(context.Context) ([]poller.Company, error) {
				return []poller.Company{{ID: 1, Source: src}}, nil
			},
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(24 * time.Hour)
		synctest.Wait()

		calls := src.requests()
		if len(calls)%2 != 0 || len(calls) < 4 {
			t.Fatalf("%d requests in a day", len(calls))
		}
		unknown := poller.QuotaView{HourlyLimit: -1, MonthlyRemaining: -1, MonthlyLimit: -1}
		for i := 2; i < len(calls); i += 2 {
			prev := calls[i-2]
			if want := budget.Interval(2, prev, unknown); calls[i].Sub(prev) != want {
				t.Fatalf("scan %d started %v after the previous one, want %v", i/2, calls[i].Sub(prev), want)
			}
			if !calls[i-1].Equal(prev) {
				t.Fatalf("a scan's two requests %v apart", calls[i-1].Sub(prev))
			}
		}
		// Half of 40,000 requests a month, pro rata for a day of January.
		if max := 0.5 * 40000 * 24 / (31 * 24); float64(len(calls)) > max+2 {
			t.Errorf("%d requests in a day, budget %.0f", len(calls), max)
		}
		if pub.n != 2 {
			t.Errorf("%d transitions published, want the two invoices created once", pub.n)
		}
		t.Logf("a day: %d scans, %d requests, every %v", len(calls)/2, len(calls), calls[2].Sub(calls[0]))

		// A failure, then a quota 403 with FIC's reset 17 minutes away.
		var reset time.Time
		src.mu.Lock()
		failAt := len(src.calls)
		src.fail = func(n int) error {
			switch n {
			case failAt:
				return errors.New("connection reset")
			case failAt + 1:
				reset = time.Now().Add(17 * time.Minute)
				return &rcv.QuotaError{ResetAt: reset, Err: errors.New("403 quota")}
			}
			return nil
		}
		src.mu.Unlock()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		calls = src.requests()[failAt:]
		if len(calls) < 4 {
			t.Fatalf("%d requests after the failure", len(calls))
		}
		if got := calls[1].Sub(calls[0]); got != time.Minute {
			t.Errorf("retry after a failed scan: %v, want the minimum interval (1m)", got)
		}
		if !calls[2].Equal(reset.Add(time.Second)) {
			t.Errorf("after the quota 403 the next request came %v after it, want at the reset + 1s (%v)", calls[2].Sub(calls[1]), reset.Add(time.Second).Sub(calls[1]))
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
