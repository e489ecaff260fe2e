package calendar_test

import (
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/calendar"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

func TestBusinessDays(t *testing.T) {
	c, err := calendar.New("", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		day  string
		want bool
	}{
		{"2026-11-24", true},  // Tuesday
		{"2026-11-28", false}, // Saturday
		{"2026-11-29", false}, // Sunday
		{"2026-12-08", false}, // Immacolata
		{"2026-12-25", false}, // Natale
		{"2026-12-26", false}, // Santo Stefano (Saturday anyway)
		{"2027-01-06", false}, // Epifania
		{"2027-04-25", false}, // Liberazione (Sunday)
		{"2027-03-29", false}, // Pasquetta 2027
		{"2026-10-05", true},  // Monday after San Francesco
		{"2027-10-04", false}, // San Francesco, Monday, from 2026 on
		{"2025-10-03", true},  // Friday
	}
	for _, tc := range tests {
		if got := c.IsBusinessDay(rcv.MustDate(tc.day)); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.day, got, tc.want)
		}
	}
	if name, ok := c.Holiday(rcv.MustDate("2027-10-04")); !ok || name != "San Francesco d'Assisi" {
		t.Errorf("4 October 2027: %q %v", name, ok)
	}
	if _, ok := c.Holiday(rcv.MustDate("2025-10-04")); ok {
		t.Error("4 October 2025 is not a holiday (restored from 2026)")
	}
	if got := c.NextBusinessDay(rcv.MustDate("2026-12-24").AddDays(1)); got != rcv.MustDate("2026-12-28") {
		t.Errorf("after Christmas: %v", got)
	}
}

func TestSendWindow(t *testing.T) {
	c, _ := calendar.New("09:00", "18:00")
	at := func(s string) time.Time {
		t, _ := time.ParseInLocation("2006-01-02 15:04", s, rcv.Rome)
		return t
	}
	tests := []struct{ in, want string }{
		{"2026-11-24 07:30", "2026-11-24 09:00"},
		{"2026-11-24 10:15", "2026-11-24 10:15"},
		{"2026-11-24 18:00", "2026-11-25 09:00"},
		{"2026-11-27 19:00", "2026-11-30 09:00"}, // Friday evening -> Monday
		{"2026-12-07 18:30", "2026-12-09 09:00"}, // Immacolata in between
	}
	for _, tc := range tests {
		if got := c.SendTime(at(tc.in)); !got.Equal(at(tc.want)) {
			t.Errorf("%s: got %v, want %s", tc.in, got, tc.want)
		}
	}
	if _, err := calendar.New("18:00", "09:00"); err == nil {
		t.Error("empty window accepted")
	}
	if _, err := calendar.New("9am", ""); err == nil {
		t.Error("bad time accepted")
	}
}
