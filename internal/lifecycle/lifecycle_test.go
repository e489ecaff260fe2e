package lifecycle_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/incasso-io/incasso/internal/lifecycle"
)

// In-flight work outlives the stop signal by the grace period, no more.
func TestWorkContextOutlivesTheSignal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sig, stop := context.WithCancel(context.Background())
		work, cancel := lifecycle.WorkContext(sig, 10*time.Second)
		defer cancel()
		stop()
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if work.Err() != nil {
			t.Fatal("work cancelled before the grace period ended")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !errors.Is(work.Err(), context.Canceled) {
			t.Fatal("work not cancelled after the grace period")
		}
	})
}

// A requested stop interrupts every actor and Run returns nil.
func TestGroupStopsTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, stop := context.WithCancel(context.Background())
		var g lifecycle.Group
		g.Signal(ctx)
		loopDone := false
		g.Loop("loop", func(ctx context.Context) error { <-ctx.Done(); loopDone = true; return ctx.Err() })
		go func() { time.Sleep(time.Second); stop() }()
		if err := g.Run(); err != nil {
			t.Fatalf("Run after a stop: %v", err)
		}
		if !loopDone {
			t.Fatal("the loop was not stopped")
		}
	})
}

// An actor's failure stops the process with its name, instead of a log
// line (the HTTP server whose failure was only logged).
func TestFailureStopsTheGroupWithItsName(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var g lifecycle.Group
	g.Signal(context.Background())
	g.Serve("ops API", &http.Server{ReadHeaderTimeout: time.Second}, ln, time.Second)
	stopped := make(chan struct{})
	g.Add("consumer", func() error { <-stopped; return nil }, func(error) { close(stopped) })
	ln.Close() // the listener dies
	err = g.Run()
	if err == nil || !strings.Contains(err.Error(), "ops API") {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the other actors were not interrupted")
	}
}
