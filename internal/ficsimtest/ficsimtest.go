// Package ficsimtest gives tests the FIC sandbox served over real HTTP, as
// natstest gives them a real NATS server. It is imported only by _test.go
// files.
package ficsimtest

import (
	"net/http/httptest"
	"testing"

	"github.com/incasso-io/incasso/internal/ficsim"
)

// Start seeds a sandbox from cfg and serves it on a loopback HTTP server;
// both are closed when the test ends.
func Start(tb testing.TB, cfg ficsim.Config) (*ficsim.Server, *httptest.Server) {
	tb.Helper()
	sim, err := ficsim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	tb.Cleanup(func() { srv.Close(); sim.Close() })
	return sim, srv
}

// PayInFull pays every open installment of a document in the sandbox.
func PayInFull(tb testing.TB, sim *ficsim.Server, cid, id int64) {
	tb.Helper()
	for {
		m, err := sim.Pay(cid, id, ficsim.PaymentSpec{})
		if err != nil {
			tb.Fatal(err)
		}
		if !m.Open() {
			return
		}
	}
}
