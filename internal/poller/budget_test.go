package poller_test

import (
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/poller"
)

func TestBudgetInterval(t *testing.T) {
	mid := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	unknown := poller.QuotaView{HourlyLimit: -1, MonthlyRemaining: -1, MonthlyLimit: -1}
	tests := []struct {
		name     string
		reqs     int
		now      time.Time
		q        poller.QuotaView
		min, max time.Duration
	}{
		// 53 requests (5,000 invoices + credit notes) at 50%: the monthly
		// budget binds (40,000/720h*0.5 = 27.8/h), about 1.9h per scan.
		{"5000 invoices, unknown usage", 53, mid, unknown, 110 * time.Minute, 120 * time.Minute},
		{"one page", 1, mid, unknown, 2 * time.Minute, 3 * time.Minute},
		{"month nearly used up", 10, mid, poller.QuotaView{HourlyLimit: 1000, MonthlyRemaining: 100, MonthlyLimit: 40000}, 24 * time.Hour, 24 * time.Hour},
		{"month exhausted", 10, mid, poller.QuotaView{HourlyLimit: 1000, MonthlyRemaining: 0, MonthlyLimit: 40000}, 24 * time.Hour, 24 * time.Hour},
		{"plenty left late in the month", 53, time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), poller.QuotaView{HourlyLimit: 1000, MonthlyRemaining: 30000, MonthlyLimit: 40000}, 6 * time.Minute, 7 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := poller.Budget{}.Interval(tc.reqs, tc.now, tc.q)
			if got < tc.min || got > tc.max {
				t.Errorf("got %v, want within [%v, %v]", got, tc.min, tc.max)
			}
		})
	}
}
