package receivables

import (
	"strconv"

	"github.com/shopspring/decimal"
)

// Money formats an amount with exactly two decimals, as events and diffs
// carry it: the same string as d.StringFixed(2), without going through
// math/big for the amounts invoices have (at most two decimals and 18
// digits in cents), which was most of the cost of encoding an event.
func Money(d decimal.Decimal) string {
	exp := int(d.Exponent())
	if exp < -2 || d.NumDigits()+exp+2 > 18 {
		return d.StringFixed(2) // rounding or a huge amount: the general path
	}
	cents := d.CoefficientInt64()
	for range exp + 2 {
		cents *= 10
	}
	var buf [24]byte
	b := buf[:0]
	if cents < 0 {
		b = append(b, '-')
		cents = -cents
	}
	b = strconv.AppendInt(b, cents/100, 10)
	r := cents % 100
	b = append(b, '.', byte('0'+r/10), byte('0'+r%10))
	return string(b)
}
