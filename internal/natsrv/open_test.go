package natsrv_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/natsrv"
)

// Waiting for an external NATS that is not up yet ends with the context: a
// stop during start-up does not sit out the minute of connection retries.
func TestOpenStopsWaitingWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = natsrv.Open(ctx, natsrv.OpenConfig{URL: "nats://" + addr})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open: %v, want the context's error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Open returned %v after the context ended", took)
	}
}
