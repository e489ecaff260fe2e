package poller_test

import (
	"log/slog"
	"testing"

	"github.com/shopspring/decimal"
)

type decimalT = decimal.Decimal

func mustDec(s string) *decimal.Decimal {
	d := decimal.RequireFromString(s)
	return &d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }
