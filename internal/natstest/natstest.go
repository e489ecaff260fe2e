// Package natstest gives tests a real, embedded JetStream server. It is
// imported only by _test.go files.
package natstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

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

// MustRunCluster starts an in-process JetStream cluster of n servers routed
// to each other, connects to all of them, and waits until JetStream answers
// (a meta leader is elected). Streams and buckets created through js can
// use up to n replicas. Everything is cleaned up when the test ends.
func MustRunCluster(tb testing.TB, n int) (urls []string, nc *nats.Conn, js jetstream.JetStream) {
	tb.Helper()
	client, cluster := make([]int, n), make([]int, n)
	for i := range n {
		client[i], cluster[i] = freePort(tb), freePort(tb)
	}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cluster[i]))
	}
	for i := range n {
		s, err := natsrv.Start(natsrv.Config{Port: client[i], StoreDir: tb.TempDir(), ServerName: fmt.Sprintf("n%d", i+1),
			ClusterName: "incasso-test", ClusterHost: "127.0.0.1", ClusterPort: cluster[i], Routes: routes})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(s.Shutdown)
		urls = append(urls, s.ClientURL())
	}
	nc, js = Connect(tb, strings.Join(urls, ","))
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return urls, nc, js
		}
		if time.Now().After(deadline) {
			tb.Fatalf("JetStream cluster of %d not ready: %v", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
