package ficsim

import (
	"net/http"
	"strconv"
	"time"
)

// QuotaConfig mirrors FIC's limits. Windows are configurable so tests can
// exhaust and reset them in seconds.
type QuotaConfig struct {
	Off          bool          `json:"off"`
	Hourly       int           `json:"hourly"`        // per company–app per window; default 1000
	HourlyWindow time.Duration `json:"hourly_window"` // default 1h, aligned to the clock
	Monthly      int           `json:"monthly"`       // default 40000 per calendar month
	ShortTerm    int           `json:"short_term"`    // per company, sliding; default 300
	ShortWindow  time.Duration `json:"short_window"`  // default 5m
}

func (q *QuotaConfig) setDefaults() {
	if q.Hourly == 0 {
		q.Hourly = 1000
	}
	if q.HourlyWindow == 0 {
		q.HourlyWindow = time.Hour
	}
	if q.Monthly == 0 {
		q.Monthly = 40000
	}
	if q.ShortTerm == 0 {
		q.ShortTerm = 300
	}
	if q.ShortWindow == 0 {
		q.ShortWindow = 5 * time.Minute
	}
}

type quotaState struct {
	hourStart  time.Time
	hourCount  int
	monthStart time.Time
	monthCount int
	recent     []time.Time // short-term sliding window
}

// consumeQuota counts one request against the company's quotas and writes
// the RateLimit-* headers. It answers 429 (short-term) or 403 + Retry-After
// (hourly/monthly) and returns false when a limit is exceeded; refused
// requests are not counted.
func (s *Server) consumeQuota(w http.ResponseWriter, cid int64) bool {
	s.mu.Lock()
	cfg := s.qcfg
	now := s.nowLocked()
	c := s.comps[cid]
	q := c.quota
	hs := now.Truncate(cfg.HourlyWindow)
	if !q.hourStart.Equal(hs) {
		q.hourStart, q.hourCount = hs, 0
	}
	y, m, _ := now.Date()
	ms := time.Date(y, m, 1, 0, 0, 0, 0, now.Location())
	if !q.monthStart.Equal(ms) {
		q.monthStart, q.monthCount = ms, 0
	}
	cut := now.Add(-cfg.ShortWindow)
	i := 0
	for i < len(q.recent) && !q.recent[i].After(cut) {
		i++
	}
	q.recent = q.recent[i:]

	status, retry := 0, time.Duration(0)
	if !cfg.Off {
		switch {
		case q.monthCount >= cfg.Monthly:
			status, retry = http.StatusForbidden, ms.AddDate(0, 1, 0).Sub(now)
		case q.hourCount >= cfg.Hourly:
			status, retry = http.StatusForbidden, hs.Add(cfg.HourlyWindow).Sub(now)
		case len(q.recent) >= cfg.ShortTerm:
			status, retry = http.StatusTooManyRequests, q.recent[0].Add(cfg.ShortWindow).Sub(now)
		}
	}
	if status == 0 {
		q.hourCount++
		q.monthCount++
		q.recent = append(q.recent, now)
	}
	h := w.Header()
	h.Set("RateLimit-HourlyRemaining", strconv.Itoa(max(0, cfg.Hourly-q.hourCount)))
	h.Set("RateLimit-HourlyLimit", strconv.Itoa(cfg.Hourly))
	h.Set("RateLimit-MonthlyRemaining", strconv.Itoa(max(0, cfg.Monthly-q.monthCount)))
	h.Set("RateLimit-MonthlyLimit", strconv.Itoa(cfg.Monthly))
	s.mu.Unlock()
	if status == 0 {
		return true
	}
	secs := int((retry + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.Itoa(max(1, secs)))
	if status == http.StatusTooManyRequests {
		writeError(w, status, "", "Too Many Attempts.")
	} else {
		writeError(w, status, "", "Hai superato il limite di richieste API consentite. Riprova più tardi.")
	}
	return false
}
