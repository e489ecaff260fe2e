package poller_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// A quota 403 pauses the company until FIC's reset, without requests in
// between, then scanning resumes on its own.
func TestRunnerPausesOnQuotaAndResumes(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 30, Quotas: ficsim.QuotaConfig{Hourly: 3, HourlyWindow: 3 * time.Second}})
	var mu sync.Mutex
	type outcome struct {
		at   time.Time
		err  error
		reqs int
	}
	var scans []outcome
	r := &poller.Runner{
		Poller: h.p,
		Budget: poller.Budget{MinInterval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond},
		Companies: func(context.Context) ([]poller.Company, error) {
			return []poller.Company{{ID: h.cid, Source: h.src}}, nil
		},
		OnScan: func(res poller.ScanResult, err error) {
			mu.Lock()
			scans = append(scans, outcome{time.Now(), err, res.Requests})
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitUntil(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i, s := range scans {
			var qe *rcv.QuotaError
			if errors.As(s.err, &qe) && i+1 < len(scans) && scans[i+1].err == nil {
				return true
			}
		}
		return false
	})
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for i, s := range scans {
		var qe *rcv.QuotaError
		if !errors.As(s.err, &qe) {
			continue
		}
		next := scans[i+1]
		if next.at.Before(qe.ResetAt) {
			t.Errorf("scanned at %v, before the reset %v", next.at, qe.ResetAt)
		}
		break
	}
	// Exactly one request hit the 403: none were sent while paused.
	refused := 0
	for _, s := range scans {
		if s.err != nil {
			refused++
		}
	}
	if got := h.sim.Stats()[h.cid]["list_issued_documents"]; got > 3*len(scans) {
		t.Errorf("%d list requests for %d scans", got, len(scans))
	}
	if refused == 0 {
		t.Error("no quota error observed")
	}
}

func waitUntil(t *testing.T, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
