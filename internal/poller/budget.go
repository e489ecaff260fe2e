package poller

import "time"

// Budget bounds how much of FIC's quota reconciliation scans may use.
type Budget struct {
	// Share of the hourly and monthly quotas scans may use (default 0.5),
	// leaving the rest to webhook fetches and dunning freshness checks.
	Share        float64
	HourlyLimit  int           // default 1000
	MonthlyLimit int           // default 40000
	MinInterval  time.Duration // default 1m
	MaxInterval  time.Duration // default 24h
}

func (b Budget) withDefaults() Budget {
	if b.Share <= 0 || b.Share > 1 {
		b.Share = 0.5
	}
	if b.HourlyLimit <= 0 {
		b.HourlyLimit = 1000
	}
	if b.MonthlyLimit <= 0 {
		b.MonthlyLimit = 40000
	}
	if b.MinInterval <= 0 {
		b.MinInterval = time.Minute
	}
	if b.MaxInterval <= 0 {
		b.MaxInterval = 24 * time.Hour
	}
	return b
}

// QuotaView is what FIC last reported for a company (-1: unknown).
type QuotaView struct {
	HourlyLimit      int
	MonthlyRemaining int
	MonthlyLimit     int
}

// Interval returns how long to wait between two scans that cost
// requestsPerScan requests each, so that scans use at most Share of the
// hourly quota and of what is left of the monthly quota, spread over the
// rest of the month.
func (b Budget) Interval(requestsPerScan int, now time.Time, q QuotaView) time.Duration {
	b = b.withDefaults()
	if requestsPerScan < 1 {
		requestsPerScan = 1
	}
	hourly := b.HourlyLimit
	if q.HourlyLimit > 0 {
		hourly = q.HourlyLimit
	}
	perHour := b.Share * float64(hourly)
	interval := time.Duration(float64(requestsPerScan) / perHour * float64(time.Hour))

	monthly := b.MonthlyLimit
	if q.MonthlyLimit > 0 {
		monthly = q.MonthlyLimit
	}
	y, m, _ := now.Date()
	monthStart := time.Date(y, m, 1, 0, 0, 0, 0, now.Location())
	monthEnd := monthStart.AddDate(0, 1, 0)
	hoursLeft := monthEnd.Sub(now).Hours()
	// Unknown usage: assume the month was used evenly so far.
	remaining := float64(monthly) * hoursLeft / monthEnd.Sub(monthStart).Hours()
	if q.MonthlyRemaining >= 0 && q.MonthlyLimit > 0 {
		remaining = float64(q.MonthlyRemaining)
	}
	if hoursLeft > 0 && remaining > 0 {
		perHourMonthly := b.Share * remaining / hoursLeft
		if mi := time.Duration(float64(requestsPerScan) / perHourMonthly * float64(time.Hour)); mi > interval {
			interval = mi
		}
	} else {
		interval = b.MaxInterval
	}
	return min(max(interval, b.MinInterval), b.MaxInterval)
}
