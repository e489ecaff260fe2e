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
