package fic

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits are the client-side request budgets per company. FIC documents
// 1,000 requests/hour per company–app pair and 40,000/month; the short-term
// limit of 300 requests per 5 minutes per company comes only from
// third-party summaries (unverified), so every number is configurable. The
// env tags are the variables every Incasso process that talks to FIC reads
// them from (the poller's and dunning's configurations embed Limits).
type Limits struct {
	Hourly     int           `env:"FIC_HOURLY_LIMIT" envDefault:"1000"`
	Monthly    int           `env:"FIC_MONTHLY_LIMIT" envDefault:"40000"` // tracked from FIC's headers
	ShortTerm  int           `env:"FIC_SHORT_TERM_LIMIT" envDefault:"300"`
	ShortEvery time.Duration `env:"FIC_SHORT_TERM_WINDOW" envDefault:"5m"`
	Burst      int           `env:"FIC_BURST" envDefault:"20"`
	Disabled   bool          `env:"FIC_CLIENT_LIMITS_DISABLED"` // no client-side limiting (ficsim with quotas off)
	// Shared makes every process reserve its requests from one budget per
	// company kept in JetStream (kvstore.QuotaBudget), so that together
	// the poller replicas and dunning stay within FIC's limits.
	Shared bool `env:"FIC_SHARED_BUDGET" envDefault:"true"`
}

// WithDefaults fills the zero fields with FIC's documented figures.
func (l Limits) WithDefaults() Limits {
	l.setDefaults()
	return l
}

// Validate reports limits that cannot be enforced, naming the variables.
func (l Limits) Validate() error {
	if l.Hourly <= 0 || l.Monthly <= 0 || l.ShortTerm <= 0 || l.ShortEvery <= 0 || l.Burst <= 0 {
		return errors.New("FIC_HOURLY_LIMIT/FIC_MONTHLY_LIMIT/FIC_SHORT_TERM_LIMIT/FIC_SHORT_TERM_WINDOW/FIC_BURST: must be positive")
	}
	return nil
}

func (l *Limits) setDefaults() {
	if l.Hourly == 0 {
		l.Hourly = 1000
	}
	if l.Monthly == 0 {
		l.Monthly = 40000
	}
	if l.ShortTerm == 0 {
		l.ShortTerm = 300
	}
	if l.ShortEvery == 0 {
		l.ShortEvery = 5 * time.Minute
	}
	if l.Burst == 0 {
		l.Burst = 20
	}
}

// Quota is what FIC last reported for a company in its RateLimit-* headers.
// A field is -1 when FIC has not sent it yet.
type Quota struct {
	HourlyRemaining  int
	HourlyLimit      int
	MonthlyRemaining int
	MonthlyLimit     int
	ObservedAt       time.Time
	// PausedUntil is set when FIC answered 403 + Retry-After (quota
	// exhausted): no request for this company is sent before then.
	PausedUntil time.Time
}

// Quotas tracks FIC's reported quota and a client-side limiter per company.
// It is shared by every Client of one process (one FIC app) and is safe for
// concurrent use.
type Quotas struct {
	limits Limits
	now    func() time.Time
	mu     sync.Mutex
	per    map[int64]*companyQuota
	// shared, if set, is the budget every process reserves from (WithShared).
	shared    SharedBudget
	sharedErr func(int64, error)
}

type companyQuota struct {
	short  *rate.Limiter // short-term sliding window, approximated by a token bucket
	hourly *rate.Limiter // hourly budget spread over the hour
	q      Quota
	// reserved requests taken from the shared budget, usable until
	// reservedUntil.
	reserved      int
	reservedAt    time.Time
	reservedUntil time.Time
	block         int // size of the next reservation
}

// NewQuotas returns a tracker enforcing l. now may be nil (time.Now).
func NewQuotas(l Limits, now func() time.Time) *Quotas {
	l.setDefaults()
	if now == nil {
		now = time.Now
	}
	return &Quotas{limits: l, now: now, per: map[int64]*companyQuota{}}
}

func (qs *Quotas) company(id int64) *companyQuota {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	c, ok := qs.per[id]
	if !ok {
		l := qs.limits
		c = &companyQuota{
			short:  rate.NewLimiter(rate.Limit(float64(l.ShortTerm)/l.ShortEvery.Seconds()), min(l.Burst, l.ShortTerm)),
			hourly: rate.NewLimiter(rate.Limit(float64(l.Hourly)/3600), min(l.Burst, l.Hourly)),
			q:      Quota{HourlyRemaining: -1, HourlyLimit: -1, MonthlyRemaining: -1, MonthlyLimit: -1},
		}
		qs.per[id] = c
	}
	return c
}

// Get returns the last quota FIC reported for the company.
func (qs *Quotas) Get(companyID int64) Quota {
	c := qs.company(companyID)
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return c.q
}

// wait blocks until a request for the company may be sent, or returns a
// *QuotaError if the company is paused past ctx's deadline-free horizon.
func (qs *Quotas) wait(ctx context.Context, companyID int64) error {
	if companyID == 0 {
		return nil
	}
	c := qs.company(companyID)
	qs.mu.Lock()
	paused := c.q.PausedUntil
	qs.mu.Unlock()
	if now := qs.now(); paused.After(now) {
		return &QuotaError{
			APIError:  &APIError{Status: http.StatusForbidden, Message: "paused by client: quota exhausted earlier", RetryAfter: paused.Sub(now), kind: ErrQuotaExhausted},
			CompanyID: companyID, ResetAt: paused,
		}
	}
	if qs.limits.Disabled {
		return nil
	}
	if err := c.short.Wait(ctx); err != nil {
		return err
	}
	if err := c.hourly.Wait(ctx); err != nil {
		return err
	}
	if qs.shared != nil {
		return qs.reserveShared(ctx, companyID, c)
	}
	return nil
}

// observe records the RateLimit-* headers of a response.
func (qs *Quotas) observe(companyID int64, h http.Header) {
	if companyID == 0 {
		return
	}
	c := qs.company(companyID)
	qs.mu.Lock()
	defer qs.mu.Unlock()
	set := func(dst *int, name string) {
		if v := h.Get(name); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				*dst = n
			}
		}
	}
	set(&c.q.HourlyRemaining, "RateLimit-HourlyRemaining")
	set(&c.q.HourlyLimit, "RateLimit-HourlyLimit")
	set(&c.q.MonthlyRemaining, "RateLimit-MonthlyRemaining")
	set(&c.q.MonthlyLimit, "RateLimit-MonthlyLimit")
	c.q.ObservedAt = qs.now()
}

// pause stops requests for the company until t.
func (qs *Quotas) pause(companyID int64, t time.Time) {
	if companyID == 0 {
		return
	}
	c := qs.company(companyID)
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if t.After(c.q.PausedUntil) {
		c.q.PausedUntil = t
	}
}

// pauseAll is pause, told to the shared budget too (FIC answered quota
// exhausted to this process: the others must not find out one request
// each).
func (qs *Quotas) pauseAll(ctx context.Context, companyID int64, t time.Time) {
	qs.pause(companyID, t)
	if qs.shared != nil && companyID != 0 {
		if err := qs.shared.Pause(context.WithoutCancel(ctx), companyID, t); err != nil && qs.sharedErr != nil {
			qs.sharedErr(companyID, err)
		}
	}
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
