// Package natstest gives tests a real, embedded JetStream server. It is
// imported only by _test.go files.
package natstest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/natsrv"
)

// MustRunJetStream starts an embedded server on a free port with its store
// in a temporary directory, and connects to it. Everything is cleaned up
// when the test ends.
func MustRunJetStream(tb testing.TB) (*server.Server, *nats.Conn, jetstream.JetStream) {
	tb.Helper()
	s, err := natsrv.Start(natsrv.Config{Port: -1, StoreDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Shutdown)
	nc, js := Connect(tb, s.ClientURL())
	return s, nc, js
}

// Connect opens a connection and a JetStream context, closed at cleanup.
func Connect(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}
