package kvstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
)

// count429 counts FIC's short-term refusals.
type count429 struct {
	next http.RoundTripper
	n    atomic.Int32
}

func (c *count429) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		c.n.Add(1)
	}
	return resp, err
}

// Two processes (say a poller replica and dunning) reading one company:
// FIC counts their requests together. Each budgeting alone sends twice
// the short-term limit and FIC answers 429; sharing the budget in
// JetStream, together they never exceed it.
func TestSharedBudgetKeepsProcessesWithinFICLimits(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 3,
				Quotas: ficsim.QuotaConfig{ShortTerm: 12, ShortWindow: 2 * time.Second, Hourly: 100000}})
			cid := sim.CompanyIDs()[0]
			docs, _ := sim.Documents(cid)
			_, _, js := natstest.MustRunJetStream(t)
			ctx := context.Background()
			limits := fic.Limits{ShortTerm: 12, ShortEvery: 2 * time.Second, Hourly: 100000, Monthly: 1000000, Burst: 12, Shared: shared}
			counter := &count429{next: http.DefaultTransport}
			var wg sync.WaitGroup
			var failed atomic.Int32
			for p := 0; p < 2; p++ { // two processes: their own tracker each
				q, err := kvstore.SharedQuotas(ctx, js, limits, kvstore.BucketConfig{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				c, err := fic.New(fic.Config{BaseURL: srv.URL, Quotas: q, RetryBase: 10 * time.Millisecond, HTTPClient: &http.Client{Transport: counter}}, fic.StaticToken(sim.Token()))
				if err != nil {
					t.Fatal(err)
				}
				for w := 0; w < 3; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < 5; i++ {
							if _, err := c.GetIssuedDocument(ctx, cid, docs[0].ID); err != nil {
								failed.Add(1)
							}
						}
					}()
				}
			}
			wg.Wait()
			if failed.Load() != 0 {
				t.Fatalf("%d requests failed", failed.Load())
			}
			got := counter.n.Load()
			if shared && got != 0 {
				t.Errorf("FIC answered 429 %d times to processes sharing the budget", got)
			}
			if !shared && got == 0 {
				t.Errorf("processes budgeting alone stayed within the limit: the test does not load FIC enough")
			}
			t.Logf("shared=%v: %d answers 429 for 30 requests", shared, got)
		})
	}
}

// FIC's own remaining figures, read by one process, bound every process;
// a quota pause seen by one stops the others before they ask FIC.
func TestSharedBudgetFollowsFICAndPauses(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	b, err := kvstore.NewQuotaBudget(ctx, js, fic.Limits{}, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	// Process A saw "3 left this hour" (the web app used the rest).
	seen := fic.Quota{HourlyRemaining: 3, HourlyLimit: 1000, MonthlyRemaining: -1, MonthlyLimit: -1, ObservedAt: now}
	g, _, _, err := b.Reserve(ctx, 1, 10, now, seen)
	if err != nil || g != 3 {
		t.Fatalf("A: granted %d (%v), want 3", g, err)
	}
	// Process B never saw the header: nothing left for it either.
	g, retry, _, err := b.Reserve(ctx, 1, 10, now.Add(time.Second), fic.Quota{HourlyRemaining: -1, MonthlyRemaining: -1})
	if err != nil || g != 0 || !retry.After(now) {
		t.Fatalf("B: granted %d, retry %v (%v); want 0 and a later retry", g, retry, err)
	}
	// Another company is not affected.
	if g, _, _, _ := b.Reserve(ctx, 2, 10, now, fic.Quota{}); g != 10 {
		t.Errorf("company 2: granted %d, want 10", g)
	}
	// A pause.
	until := now.Add(20 * time.Minute)
	if err := b.Pause(ctx, 2, until); err != nil {
		t.Fatal(err)
	}
	if g, _, paused, _ := b.Reserve(ctx, 2, 1, now.Add(time.Minute), fic.Quota{}); g != 0 || !paused.Equal(until) {
		t.Errorf("paused company: granted %d, paused until %v", g, paused)
	}
	// Through fic.Quotas: the pause is a QuotaError without a request.
	q := fic.NewQuotas(fic.Limits{}, func() time.Time { return now.Add(time.Minute) }).WithShared(b, nil)
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 1, Companies: 1, Invoices: 1})
	c, _ := fic.New(fic.Config{BaseURL: srv.URL, Quotas: q}, fic.StaticToken(sim.Token()))
	if _, err := c.GetIssuedDocument(ctx, 2, 1); !errors.Is(err, fic.ErrQuotaExhausted) {
		t.Errorf("request of a paused company: %v, want ErrQuotaExhausted", err)
	}
	if st := sim.Stats()[2]; len(st) != 0 {
		t.Errorf("a paused company's request reached FIC: %v", st)
	}
}

// BenchmarkSharedReserve is the cost of one reservation (a KV read and a
// compare-and-set on the company's record): a process pays it once per
// block of up to fic.SharedReserveBlock FIC requests.
func BenchmarkSharedReserve(b *testing.B) {
	_, _, js := natstest.MustRunJetStream(b)
	ctx := context.Background()
	bud, err := kvstore.NewQuotaBudget(ctx, js, fic.Limits{ShortTerm: 1 << 30, Hourly: 1 << 30}, kvstore.BucketConfig{})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if g, _, _, err := bud.Reserve(ctx, 1, fic.SharedReserveBlock, now, fic.Quota{}); err != nil || g == 0 {
			b.Fatal(g, err)
		}
	}
}
