package receivables_test

import (
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Money must print exactly what StringFixed(2) prints, whatever the
// exponent, sign or size.
func TestMoneyMatchesStringFixed(t *testing.T) {
	for _, s := range []string{
		"0", "-0", "0.00", "1", "-1", "0.1", "-0.1", "0.05", "-0.05", "1234.56", "-1234.56",
		"1234.5", "1234.567", "1234.565", "-1234.565", "0.005", "-0.005", "0.004",
		"100", "1e3", "12e16", "9223372036854775807", "-9223372036854775808",
		"92233720368547758.07", "-92233720368547758.08", "9999999999999999.99", "99999999999999999.99",
		"123456789012345678901234567890.12", "1.999", "-1.995", "0.0000001",
	} {
		d := decimal.RequireFromString(s)
		if got, want := rcv.Money(d), d.StringFixed(2); got != want {
			t.Errorf("Money(%s) = %q, want %q", s, got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		d := decimal.New(r.Int64N(2_000_000_000_000)-1_000_000_000_000, int32(r.IntN(12)-8))
		if got, want := rcv.Money(d), d.StringFixed(2); got != want {
			t.Fatalf("Money(%s) = %q, want %q", d, got, want)
		}
	}
}

func BenchmarkMoney(b *testing.B) {
	d := decimal.RequireFromString("12345.67")
	b.Run("Money", func(b *testing.B) {
		for b.Loop() {
			_ = rcv.Money(d)
		}
	})
	b.Run("StringFixed", func(b *testing.B) {
		for b.Loop() {
			_ = d.StringFixed(2)
		}
	})
}
