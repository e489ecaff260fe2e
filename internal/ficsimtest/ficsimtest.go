// Package ficsimtest gives tests the FIC sandbox served over real HTTP, as
// natstest gives them a real NATS server. It is imported only by _test.go
// files.
package ficsimtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/oauth2"

	"github.com/incasso-io/incasso/internal/fic"
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

// Authorize runs the OAuth code flow against the sandbox at base with its
// default app and returns the token (what `poller connect` stores).
func Authorize(tb testing.TB, base string) *oauth2.Token {
	tb.Helper()
	o := fic.NewOAuth(base, "ficsim-client", "ficsim-secret", "http://127.0.0.1:1/cb", nil)
	v := oauth2.GenerateVerifier()
	nf := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := nf.Get(o.AuthCodeURL("s", v))
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := o.Exchange(context.Background(), loc.Query().Get("code"), v)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}
