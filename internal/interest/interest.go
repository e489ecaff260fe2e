// Package interest computes statutory late-payment interest for
// business-to-business invoices under D.Lgs. 231/2002: simple interest at the
// reference rate (the ECB main refinancing rate on the first day of the
// half-year) plus 8 percentage points, accruing from the day after the due
// date, on an actual/365 basis; plus the flat €40 compensation per invoice
// (art. 6). The half-yearly rates are data (rates.csv, with its source),
// overridable by a file.
package interest

import (
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

//go:embed rates.csv
var defaultRates string

// Spread is the 8 points added to the reference rate.
var Spread = decimal.NewFromInt(8)

// Compensation is the flat recovery cost per invoice (art. 6, c. 2).
var Compensation = decimal.NewFromInt(40)

type period struct {
	from rcv.Date
	rate decimal.Decimal // reference rate, percent
	note string
}

// Table is the reference rate history.
type Table struct{ periods []period }

// Default returns the table shipped with Incasso.
func Default() *Table {
	t, err := Parse(strings.NewReader(defaultRates))
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return t
}

// Parse reads "from,reference_rate_percent[,note]" rows; '#' lines are comments.
func Parse(r io.Reader) (*Table, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("interest rates: %w", err)
	}
	t := &Table{}
	for i, row := range rows {
		if len(row) < 2 {
			return nil, fmt.Errorf("interest rates: row %d: want from,rate[,note]", i+1)
		}
		d, err := rcv.ParseDate(strings.TrimSpace(row[0]))
		if err != nil {
			return nil, fmt.Errorf("interest rates: row %d: %w", i+1, err)
		}
		rate, err := decimal.NewFromString(strings.TrimSpace(row[1]))
		if err != nil || rate.IsNegative() {
			return nil, fmt.Errorf("interest rates: row %d: rate %q", i+1, row[1])
		}
		p := period{from: d, rate: rate}
		if len(row) > 2 {
			p.note = strings.TrimSpace(row[2])
		}
		t.periods = append(t.periods, p)
	}
	if len(t.periods) == 0 {
		return nil, errors.New("interest rates: no rows")
	}
	slices.SortFunc(t.periods, func(a, b period) int { return a.from.Compare(b.from) })
	return t, nil
}

// RateOn returns the statutory rate (reference + 8) in percent on day d.
func (t *Table) RateOn(d rcv.Date) (decimal.Decimal, bool) {
	i, found := slices.BinarySearchFunc(t.periods, d, func(p period, d rcv.Date) int { return p.from.Compare(d) })
	if !found {
		i--
	}
	if i < 0 {
		return decimal.Zero, false
	}
	return t.periods[i].rate.Add(Spread), true
}

// Result is the interest owed on one amount.
type Result struct {
	Days     int             // days of delay
	Interest decimal.Decimal // rounded to cents
	// Rates are the statutory rates applied, one per half-year crossed.
	Rates []decimal.Decimal
}

// Compute returns the simple interest on amount for payment due on due and
// not paid by asOf (interest runs from due+1 to asOf, both included).
func (t *Table) Compute(amount decimal.Decimal, due, asOf rcv.Date) (Result, error) {
	var r Result
	if !asOf.After(due) || !amount.IsPositive() {
		return r, nil
	}
	sum := decimal.Zero
	for d := due.AddDays(1); !d.After(asOf); {
		rate, ok := t.RateOn(d)
		if !ok {
			return r, fmt.Errorf("interest: no reference rate for %s", d)
		}
		// Days until the next period boundary (or asOf).
		end := asOf
		i, _ := slices.BinarySearchFunc(t.periods, d, func(p period, d rcv.Date) int { return p.from.Compare(d) })
		for ; i < len(t.periods); i++ {
			if t.periods[i].from.After(d) {
				if last := t.periods[i].from.AddDays(-1); last.Before(end) {
					end = last
				}
				break
			}
		}
		days := end.Sub(d) + 1
		sum = sum.Add(amount.Mul(rate).Mul(decimal.NewFromInt(int64(days))))
		r.Days += days
		if len(r.Rates) == 0 || !r.Rates[len(r.Rates)-1].Equal(rate) {
			r.Rates = append(r.Rates, rate)
		}
		d = end.AddDays(1)
	}
	r.Interest = sum.Div(decimal.NewFromInt(36500)).Round(2)
	return r, nil
}
