package poller_test

import (
	"log/slog"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/ficsim"
)

type decimalT = decimal.Decimal

func mustDec(s string) *decimal.Decimal {
	d := decimal.RequireFromString(s)
	return &d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

// payInFull pays every open installment of a document in the sandbox.
func payInFull(t *testing.T, sim *ficsim.Server, cid, id int64) {
	t.Helper()
	for {
		m, err := sim.Pay(cid, id, ficsim.PaymentSpec{})
		if err != nil {
			t.Fatal(err)
		}
		if m["next_due_date"] == nil {
			return
		}
	}
}
