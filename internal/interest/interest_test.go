package interest_test

import (
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/interest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

func TestCompute(t *testing.T) {
	tab := interest.Default()
	d := rcv.MustDate
	tests := []struct {
		name      string
		amount    string
		due, asOf string
		days      int
		want      string
	}{
		// 1,000 € at 10.15% (2.15 + 8) for 30 days: 1000*10.15*30/36500 = 8.342...
		{"one half-year", "1000.00", "2025-09-30", "2025-10-30", 30, "8.34"},
		{"not late", "1000.00", "2025-09-30", "2025-09-30", 0, "0.00"},
		// 10,000 € due 2024-06-01: 29 days of H1 2024 at 12.50% (2 to 30 June), 184 days
		// of H2 at 12.25%, 10 days of 2025 at 11.15%: 10000*2728/36500 = 747.40.
		{"across half-years", "10000.00", "2024-06-01", "2025-01-10", 223, "747.40"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tab.Compute(decimal.RequireFromString(tc.amount), d(tc.due), d(tc.asOf))
			if err != nil {
				t.Fatal(err)
			}
			if r.Days != tc.days || r.Interest.StringFixed(2) != tc.want {
				t.Errorf("got %d days %s, want %d days %s (rates %v)", r.Days, r.Interest, tc.days, tc.want, r.Rates)
			}
		})
	}
	if rate, _ := tab.RateOn(d("2023-08-15")); rate.String() != "12" {
		t.Errorf("2023 H2 rate %s, want 12 (4 + 8)", rate)
	}
	if _, err := tab.Compute(decimal.NewFromInt(1), d("2010-01-01"), d("2010-02-01")); err == nil {
		t.Error("no error before the first known rate")
	}
	if _, err := interest.Parse(strings.NewReader("2025-01-01,abc")); err == nil {
		t.Error("bad rate accepted")
	}
	if !interest.Compensation.Equal(decimal.NewFromInt(40)) {
		t.Error("compensation")
	}
}
