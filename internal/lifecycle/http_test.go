package lifecycle_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/lifecycle"
)

// SlowClients opens n connections to addr that never finish their request:
// half stall in the headers, half announce a body and send one byte of it.
func SlowClients(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break // the backlog is full: that is the point
		}
		if i%2 == 0 {
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		} else {
			fmt.Fprintf(c, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx")
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// Many slow connections neither use up the service's file descriptors nor
// keep a control request from being answered: the listener caps the open
// connections, and the server cuts a client that is slow in its headers or
// its body (issue #15: 1,000 slow-body connections were still held after
// 100 s, and 10,000 exhausted the descriptors).
func TestSlowConnectionsCannotHoldTheServer(t *testing.T) {
	l := lifecycle.Limits{ReadHeader: time.Second, Read: 2 * time.Second, MaxConns: 40}
	var open, peak atomic.Int32
	srv := lifecycle.HTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintln(w, "ok")
	}), l)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Count the sockets the server really holds: accepted from the raw
	// listener, until closed.
	counted := &countingListener{Listener: ln, open: &open, peak: &peak}
	go func() { _ = srv.Serve(lifecycle.Limit(counted, l)) }()
	defer srv.Close()
	slow := SlowClients(t, ln.Addr().String(), 200)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("control request behind %d slow connections: %v", len(slow), err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if p := peak.Load(); p > int32(l.MaxConns) {
		t.Fatalf("%d connections open at once, cap %d", p, l.MaxConns)
	}
	// The slow ones are cut, not held.
	deadline := time.Now().Add(15 * time.Second)
	for open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := open.Load(); n > 0 {
		t.Fatalf("%d slow connections still held after 15 s", n)
	}
	t.Logf("%d slow connections: control request answered in %v, at most %d open at once", len(slow), took.Round(time.Millisecond), peak.Load())
}

type countingListener struct {
	net.Listener
	mu         sync.Mutex
	open, peak *atomic.Int32
}

func (c *countingListener) Accept() (net.Conn, error) {
	conn, err := c.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if n := c.open.Add(1); n > c.peak.Load() {
		c.peak.Store(n)
	}
	c.mu.Unlock()
	return &countedConn{Conn: conn, open: c.open}, nil
}

type countedConn struct {
	net.Conn
	once sync.Once
	open *atomic.Int32
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.open.Add(-1) })
	return err
}
