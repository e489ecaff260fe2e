package receivables_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/receivables"
)

func TestDate(t *testing.T) {
	d := receivables.MustDate("2026-02-28")
	if got := d.AddDays(1).String(); got != "2026-03-01" {
		t.Errorf("AddDays: got %s", got)
	}
	if got := receivables.MustDate("2026-03-30").Sub(d); got != 30 {
		t.Errorf("Sub across DST: got %d, want 30", got)
	}
	if _, err := receivables.ParseDate("2026-02-29"); err == nil {
		t.Error("accepted 2026-02-29")
	}
	start := receivables.MustDate("2026-03-29").In(receivables.Rome) // DST starts that night
	if start.UTC().Hour() != 23 {
		t.Errorf("midnight in Rome: got %v", start.UTC())
	}
	b, _ := json.Marshal(struct {
		D receivables.Date `json:"d"`
		Z receivables.Date `json:"z,omitzero"`
	}{D: d})
	if string(b) != `{"d":"2026-02-28"}` {
		t.Errorf("json: %s", b)
	}
	var back struct{ D receivables.Date }
	if err := json.Unmarshal([]byte(`{"D":"2026-12-31"}`), &back); err != nil || back.D != receivables.MustDate("2026-12-31") {
		t.Errorf("unmarshal: %v %v", back, err)
	}
	if receivables.DateIn(time.Date(2026, 6, 30, 22, 30, 0, 0, time.UTC), receivables.Rome) != receivables.MustDate("2026-07-01") {
		t.Error("DateIn Rome")
	}
}

func TestDateString(t *testing.T) {
	for _, d := range []receivables.Date{
		{Year: 2026, Month: 1, Day: 1}, {Year: 2026, Month: 12, Day: 31}, {Year: 999, Month: 9, Day: 9},
		{Year: 1, Month: 1, Day: 1}, {Year: 9999, Month: 12, Day: 31}, {Year: 10000, Month: 1, Day: 1},
		{Year: -1, Month: 1, Day: 1}, {Year: 2026, Month: 13, Day: 1}, {Year: 2026, Month: 0, Day: 5},
	} {
		if got, want := d.String(), fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day); got != want {
			t.Errorf("%#v: got %q, want %q", d, got, want)
		}
	}
	if got := (receivables.Date{}).String(); got != "" {
		t.Errorf("zero date: got %q, want empty", got)
	}
}
