package kvstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/fic"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// QuotaBucket holds each company's shared FIC request budget.
const QuotaBucket = "incasso_fic_quota"

// QuotaBudget implements fic.SharedBudget: one record per company with the
// requests every Incasso process reserved in the recent sub-windows of
// FIC's short-term and hourly windows, FIC's own remaining figures as last
// reported, and a pause. Every reservation is a compare-and-set on that
// record, so processes never together reserve more than a limit allows in
// any sliding window:
//
// A window W is split into k sub-windows; a reservation at t is granted if
// the requests counted in the current sub-window and the k before it, plus
// the new ones, stay within the limit. Any sliding window of length W lies
// within those k+1 sub-windows, so it never holds more than the limit; the
// price is that the limit is reached over W + W/k instead of W (about 9%
// below FIC's figure in the long run, the whole figure in a burst).
type QuotaBudget struct {
	KV     jetstream.KeyValue
	Limits fic.Limits
}

var _ fic.SharedBudget = (*QuotaBudget)(nil)

// Sub-windows per window: 10 of 30 s for a 5-minute short-term window, 12
// of 5 minutes for the hour.
const (
	shortSubs  = 10
	hourlySubs = 12
)

// NewQuotaBudget opens the bucket.
func NewQuotaBudget(ctx context.Context, js jetstream.JetStream, l fic.Limits, c BucketConfig) (*QuotaBudget, error) {
	kv, err := bucket(ctx, js, QuotaBucket, "FIC request budget per company, shared by every Incasso process", c)
	return &QuotaBudget{KV: kv, Limits: l.WithDefaults()}, err
}

// ring counts requests per sub-window: Counts[i] is sub-window Base+i.
type ring struct {
	Sub    time.Duration `json:"sub"`
	Base   int64         `json:"base"`
	Counts []int         `json:"n"`
}

// at moves the ring so that it ends at the sub-window holding now and
// returns the requests counted in it.
func (r *ring) at(now time.Time, sub time.Duration, k int) int {
	idx := now.UnixNano() / int64(sub)
	if r.Sub != sub {
		// Another process configured another window: keep everything it
		// counted, as if in the current sub-window (conservative).
		total := r.sum()
		*r = ring{Sub: sub, Base: idx - int64(k), Counts: make([]int, k+1)}
		r.Counts[k] = total
	}
	first := idx - int64(k)
	if shift := first - r.Base; shift > 0 {
		if shift >= int64(len(r.Counts)) {
			r.Counts = make([]int, k+1)
		} else {
			r.Counts = append(r.Counts[shift:], make([]int, shift)...)
		}
		r.Base = first
	}
	for len(r.Counts) < k+1 {
		r.Counts = append(r.Counts, 0)
	}
	return r.sum()
}

func (r *ring) sum() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

// add counts n requests in the current (last) sub-window.
func (r *ring) add(n int) { r.Counts[len(r.Counts)-1] += n }

// next is when the oldest counted sub-window leaves the window.
func (r *ring) next() time.Time { return time.Unix(0, (r.Base+1)*int64(r.Sub)) }

// reported is what FIC said was left of one of its quotas, and how many
// requests Incasso reserved since.
type reported struct {
	Remaining int       `json:"rem"`
	At        time.Time `json:"at"`
	Since     int       `json:"since"`
}

func (r *reported) observe(remaining int, at time.Time) {
	if remaining >= 0 && at.After(r.At) {
		*r = reported{Remaining: remaining, At: at}
	}
}

// left is what FIC's figure leaves, or -1 when it is older than maxAge.
func (r *reported) left(now time.Time, maxAge time.Duration) int {
	if r.At.IsZero() || now.Sub(r.At) > maxAge {
		return -1
	}
	return max(0, r.Remaining-r.Since)
}

type quotaState struct {
	Short   ring      `json:"short"`
	Hourly  ring      `json:"hourly"`
	Paused  time.Time `json:"paused,omitzero"`
	FICHour reported  `json:"fic_hourly"`
	FICMon  reported  `json:"fic_monthly"`
}

func quotaKey(cid int64) string { return strconv.FormatInt(cid, 10) }

// Reserve implements fic.SharedBudget.
func (b *QuotaBudget) Reserve(ctx context.Context, cid int64, n int, now time.Time, seen fic.Quota) (int, time.Time, time.Time, error) {
	l := b.Limits
	for attempt := 0; ; attempt++ {
		var st quotaState
		rev, err := getJSON(ctx, b.KV, quotaKey(cid), &st)
		if err != nil {
			return 0, time.Time{}, time.Time{}, err
		}
		if st.Paused.After(now) {
			return 0, time.Time{}, st.Paused, nil
		}
		changed := false
		if !seen.ObservedAt.IsZero() {
			h, m := st.FICHour, st.FICMon
			st.FICHour.observe(seen.HourlyRemaining, seen.ObservedAt)
			st.FICMon.observe(seen.MonthlyRemaining, seen.ObservedAt)
			changed = h != st.FICHour || m != st.FICMon
		}
		shortUsed := st.Short.at(now, l.ShortEvery/shortSubs, shortSubs)
		hourUsed := st.Hourly.at(now, time.Hour/hourlySubs, hourlySubs)
		g := min(n, l.ShortTerm-shortUsed, l.Hourly-hourUsed)
		retry := now.Add(time.Second)
		if l.ShortTerm-shortUsed <= 0 {
			retry = st.Short.next()
		} else if l.Hourly-hourUsed <= 0 {
			retry = st.Hourly.next()
		}
		if left := st.FICHour.left(now, time.Hour); left >= 0 && left < g {
			g, retry = left, st.FICHour.At.Add(time.Hour)
		}
		if left := st.FICMon.left(now, 31*24*time.Hour); left >= 0 && left < g {
			g, retry = left, st.FICMon.At.Add(24*time.Hour)
		}
		g = max(g, 0)
		if g == 0 && !changed {
			return 0, retry, time.Time{}, nil
		}
		st.Short.add(g)
		st.Hourly.add(g)
		st.FICHour.Since += g
		st.FICMon.Since += g
		if _, err := putJSON(ctx, b.KV, quotaKey(cid), st, rev); err != nil {
			if errors.Is(err, rcv.ErrConflict) && attempt < 50 {
				continue // another process reserved in between
			}
			return 0, time.Time{}, time.Time{}, err
		}
		return g, retry, time.Time{}, nil
	}
}

// Pause implements fic.SharedBudget.
func (b *QuotaBudget) Pause(ctx context.Context, cid int64, until time.Time) error {
	for attempt := 0; attempt < 50; attempt++ {
		var st quotaState
		rev, err := getJSON(ctx, b.KV, quotaKey(cid), &st)
		if err != nil {
			return err
		}
		if !until.After(st.Paused) {
			return nil
		}
		st.Paused = until
		if _, err = putJSON(ctx, b.KV, quotaKey(cid), st, rev); err == nil {
			return nil
		}
		if !errors.Is(err, rcv.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("kvstore: pause quota of company %d: too many concurrent updates", cid)
}

// SharedQuotas returns the tracker every FIC client of a process shares:
// its own limiters, plus the company budgets of the bucket when
// l.Shared. Failures to reach the bucket are logged at most once a
// minute (the requests then go by the process's own limits).
func SharedQuotas(ctx context.Context, js jetstream.JetStream, l fic.Limits, c BucketConfig, log *slog.Logger) (*fic.Quotas, error) {
	q := fic.NewQuotas(l, nil)
	if !l.Shared || l.Disabled {
		return q, nil
	}
	b, err := NewQuotaBudget(ctx, js, l, c)
	if err != nil {
		return nil, err
	}
	var last atomic.Int64
	return q.WithShared(b, func(cid int64, err error) {
		if now := time.Now().Unix(); now-last.Load() >= 60 {
			last.Store(now)
			log.Warn("shared FIC budget unreachable: requests go by this process's limits alone", "company_id", cid, "error", err)
		}
	}), nil
}
