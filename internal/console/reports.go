package console

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/dunning"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// bar is one bar of a chart, laid out.
type bar struct {
	Label, Value string
	X, Y, W, H   int
	LX, LY       int
}

// chart is an SVG chart drawn on the server: no JavaScript, readable by
// screen readers through its title and the table beside it.
type chart struct {
	Title  string
	Width  int
	Height int
	Bars   []bar
	Line   string // points of a polyline
	Dots   []bar
}

// bars lays out values (at most a few dozen) as a bar chart.
func bars(title string, labels []string, values []decimal.Decimal, format func(decimal.Decimal) string) chart {
	ch := chart{Title: title, Width: 640, Height: 240}
	top := decimal.Zero
	for _, v := range values {
		top = decimal.Max(top, v)
	}
	n := len(values)
	if n == 0 {
		return ch
	}
	slot := (ch.Width - 40) / n
	for i, v := range values {
		h := 0
		if top.IsPositive() {
			h = int(v.Div(top).Mul(decimal.NewFromInt(160)).IntPart())
		}
		x := 20 + i*slot + slot/8
		ch.Bars = append(ch.Bars, bar{Label: labels[i], Value: format(v), X: x, Y: 190 - h, W: slot * 3 / 4, H: h, LX: x + slot*3/8, LY: 210})
	}
	return ch
}

// line lays out values as a line with dots.
func line(title string, labels []string, values []float64) chart {
	ch := chart{Title: title, Width: 640, Height: 240}
	top := 1.0
	for _, v := range values {
		top = max(top, v)
	}
	n := len(values)
	if n == 0 {
		return ch
	}
	step := (ch.Width - 80) / max(1, n-1)
	var pts []string
	for i, v := range values {
		x, y := 40+i*step, 190-int(v/top*160)
		pts = append(pts, fmt.Sprintf("%d,%d", x, y))
		ch.Dots = append(ch.Dots, bar{Label: labels[i], Value: strconv.FormatFloat(v, 'f', 0, 64), X: x, Y: y, LX: x, LY: 210})
	}
	ch.Line = strings.Join(pts, " ")
	return ch
}

func (c *Console) reports(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	all, err := c.Engine.Cases.List(ctx, 0)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	var companies []int64
	for _, cs := range all {
		if !slices.Contains(companies, cs.CompanyID) {
			companies = append(companies, cs.CompanyID)
		}
	}
	slices.Sort(companies)
	cid := int64(0)
	if v := r.URL.Query().Get("company"); v != "" {
		cid, _ = strconv.ParseInt(v, 10, 64)
	}
	if cid == 0 && len(companies) > 0 {
		cid = companies[0]
	}
	today := rcv.DateIn(c.now(), rcv.Rome)
	lang := c.lang(r)
	data := map[string]any{"Companies": companies, "CID": cid}
	if cid == 0 {
		c.render(w, r, "reports", data)
		return
	}
	ag, err := c.Engine.AgingReport(ctx, cid, today)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	keys := []string{"current", "0-30", "31-60", "61-90", "90+"}
	labels := map[string][]string{"it": {"non scaduto", "0-30 gg", "31-60 gg", "61-90 gg", "oltre 90 gg"}, "en": {"not due", "0-30 days", "31-60 days", "61-90 days", "over 90 days"}}[lang]
	var vals []decimal.Decimal
	for _, k := range keys {
		d, _ := decimal.NewFromString(ag.Buckets[k])
		vals = append(vals, d)
	}
	data["Aging"] = ag
	data["AgingChart"] = bars(tr(lang, "aging_chart"), labels, vals, func(d decimal.Decimal) string { return euro(d) })
	data["AgingRows"] = zipRows(labels, vals)
	// DSO at the end of each of the last six months, and today.
	var dl []string
	var dv []float64
	for i := 5; i >= 0; i-- {
		// The last day of the month i months ago.
		day := rcv.DateOf(time.Date(today.Year, today.Month-time.Month(i)+1, 0, 12, 0, 0, 0, time.UTC))
		if i == 0 {
			day = today
		}
		a, err := c.Engine.AgingReport(ctx, cid, day)
		if err != nil {
			c.fail(w, r, http.StatusServiceUnavailable, err)
			return
		}
		dl, dv = append(dl, fmt.Sprintf("%02d/%02d", day.Day, day.Month)), append(dv, a.DSO)
	}
	data["DSOChart"] = line(tr(lang, "dso_chart"), dl, dv)
	// What goes out in the next 14 days (the preview as a calendar).
	var days []calendarDay
	for i := 0; i < 14; i++ {
		day := today.AddDays(i)
		items, err := c.Engine.Preview(ctx, cid, day)
		if err != nil {
			c.fail(w, r, http.StatusServiceUnavailable, err)
			return
		}
		wd := day.In(rcv.Rome).Weekday()
		cd := calendarDay{Day: day, Items: items, Amount: decimal.Zero, Weekend: wd == time.Saturday || wd == time.Sunday}
		for _, it := range items {
			d, _ := decimal.NewFromString(it.AmountDue)
			cd.Amount = cd.Amount.Add(d)
		}
		days = append(days, cd)
	}
	data["Calendar"] = days
	c.render(w, r, "reports", data)
}

type calendarDay struct {
	Day     rcv.Date
	Items   []dunning.PreviewItem
	Amount  decimal.Decimal
	Weekend bool
}

type labelled struct {
	Label string
	Value decimal.Decimal
}

func zipRows(ls []string, vs []decimal.Decimal) []labelled {
	out := make([]labelled, len(ls))
	for i := range ls {
		out[i] = labelled{ls[i], vs[i]}
	}
	return out
}

// euro formats an amount (a decimal or its string) the Italian way:
// € 1.234,56.
func euro(v any) string {
	var d decimal.Decimal
	switch x := v.(type) {
	case decimal.Decimal:
		d = x
	case string:
		d, _ = decimal.NewFromString(x)
	}
	s := d.StringFixed(2)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, ch := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(ch)
	}
	out := "€ " + b.String() + "," + frac
	if neg {
		out = "-" + out
	}
	return out
}
