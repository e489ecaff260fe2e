// Package calendar knows Italian business days and send windows: weekends
// and national holidays (rickar/cal/v2's it holidays, plus 4 October, San
// Francesco d'Assisi, a national holiday again from 2026) are not working
// days, and a reminder is sent only inside the send window, Europe/Rome.
package calendar

import (
	"fmt"
	"time"

	"github.com/rickar/cal/v2"
	"github.com/rickar/cal/v2/it"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// SanFrancesco is the 4 October national holiday, restored from 2026
// (Legge 151/2025).
var SanFrancesco = &cal.Holiday{
	Name: "San Francesco d'Assisi", Type: cal.ObservancePublic,
	Month: time.October, Day: 4, StartYear: 2026, Func: cal.CalcDayOfMonth,
}

// Calendar is the Italian business calendar with a send window.
type Calendar struct {
	bc         *cal.BusinessCalendar
	loc        *time.Location
	start, end time.Duration // send window, from midnight
}

// New returns the calendar; window bounds are "HH:MM" in Europe/Rome
// (defaults 09:00–18:00).
func New(windowStart, windowEnd string) (*Calendar, error) {
	bc := cal.NewBusinessCalendar()
	bc.AddHoliday(it.Holidays...)
	bc.AddHoliday(SanFrancesco)
	c := &Calendar{bc: bc, loc: rcv.Rome, start: 9 * time.Hour, end: 18 * time.Hour}
	var err error
	if windowStart != "" {
		if c.start, err = clock(windowStart); err != nil {
			return nil, fmt.Errorf("send window start: %w", err)
		}
	}
	if windowEnd != "" {
		if c.end, err = clock(windowEnd); err != nil {
			return nil, fmt.Errorf("send window end: %w", err)
		}
	}
	if c.end <= c.start {
		return nil, fmt.Errorf("send window %s–%s is empty", windowStart, windowEnd)
	}
	return c, nil
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q: want HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// IsBusinessDay reports whether d is a working day in Italy.
func (c *Calendar) IsBusinessDay(d rcv.Date) bool {
	return c.bc.IsWorkday(d.In(c.loc).Add(12 * time.Hour))
}

// Holiday names the holiday on d, if any.
func (c *Calendar) Holiday(d rcv.Date) (string, bool) {
	_, obs, h := c.bc.IsHoliday(d.In(c.loc).Add(12 * time.Hour))
	if obs && h != nil {
		return h.Name, true
	}
	return "", false
}

// NextBusinessDay returns d if it is a business day, else the next one.
func (c *Calendar) NextBusinessDay(d rcv.Date) rcv.Date {
	for i := 0; i < 30 && !c.IsBusinessDay(d); i++ {
		d = d.AddDays(1)
	}
	return d
}

// SendTime returns the first instant at or after t that is inside the send
// window of a business day.
func (c *Calendar) SendTime(t time.Time) time.Time {
	t = t.In(c.loc)
	for i := 0; i < 60; i++ {
		d := rcv.DateOf(t)
		day := d.In(c.loc)
		open, close := day.Add(c.start), day.Add(c.end)
		if c.IsBusinessDay(d) && t.Before(close) {
			if t.Before(open) {
				return open
			}
			return t
		}
		t = d.AddDays(1).In(c.loc)
	}
	return t
}

// LastSendTime is the last minute of the send window on day d.
func (c *Calendar) LastSendTime(d rcv.Date) time.Time { return d.In(c.loc).Add(c.end - time.Minute) }

// InWindow reports whether t is inside the send window of a business day.
func (c *Calendar) InWindow(t time.Time) bool { return c.SendTime(t).Equal(t.In(c.loc)) }

// DemoClock returns the business clock for INCASSO_DEMO_CLOCK: nil (real
// time) unless it is "send-window", which shifts time into the next send
// window (09:00–18:00 Europe/Rome on a business day) if started outside it,
// so that demos and smoke tests see reminders at any hour.
func DemoClock(mode string) func() time.Time {
	if mode != "send-window" {
		return nil
	}
	cal, _ := New("09:00", "18:00")
	if cal.InWindow(time.Now()) {
		return nil
	}
	// 10:00 of the next business day: the same instant for every process.
	offset := time.Until(cal.SendTime(time.Now()).Add(time.Hour))
	return func() time.Time { return time.Now().Add(offset) }
}
