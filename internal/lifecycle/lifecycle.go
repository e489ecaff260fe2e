// Package lifecycle runs a process as a group of actors that start and
// stop together (github.com/oklog/run): the stop signal, HTTP servers,
// message consumers, background loops. The first actor to return — the
// signal, or a failure — stops all the others; Run returns the first
// error, named after its actor, so a listener that dies stops the process
// with a clear message instead of a log line nobody reads.
//
// Work in flight is not cut by the stop signal: handlers run under
// WorkContext, which outlives the signal by a grace period, so a reminder
// being sent when SIGTERM arrives is finished and recorded (or handed back)
// instead of left "possibly sent".
//
// Every binary (poller, dunning, ficsim, the demo) uses it the same way:
//
//	var g lifecycle.Group
//	g.Signal(ctx)                       // ctx: the process's signal context
//	g.Serve("ops API", srv, ln, 10*time.Second)
//	g.Add("events consumer", consume, drain)
//	return g.Run()
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/oklog/run"
)

// ErrStopped is what the signal actor returns: a requested stop, not a
// failure (Run returns nil for it).
var ErrStopped = errors.New("lifecycle: stop requested")

// Group is a set of actors. The zero value is ready to use; a Group runs
// once.
type Group struct {
	g run.Group
}

// Add registers an actor: execute runs until it fails or is interrupted;
// interrupt makes it return (it is called with the error that stops the
// group and must not block for long). An error of execute is wrapped with
// the actor's name.
func (g *Group) Add(name string, execute func() error, interrupt func(error)) {
	g.g.Add(func() error {
		if err := execute(); err != nil && !errors.Is(err, ErrStopped) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return ErrStopped
	}, interrupt)
}

// Signal adds the actor that returns when ctx is done (SIGTERM, SIGINT, a
// test's cancel): that is how a stop is requested.
func (g *Group) Signal(ctx context.Context) {
	done := make(chan struct{})
	g.g.Add(func() error {
		select {
		case <-ctx.Done():
		case <-done:
		}
		return ErrStopped
	}, func(error) { close(done) })
}

// Serve adds an HTTP server on ln. A failure to serve stops the group; on
// stop the server shuts down gracefully within timeout (requests in
// flight finish), then is closed.
func (g *Group) Serve(name string, srv *http.Server, ln net.Listener, timeout time.Duration) {
	g.Add(name, func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
	})
}

// Loop adds a background function that runs until its context is
// cancelled (on stop) and returns nil, or fails and stops the group.
func (g *Group) Loop(name string, f func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(name, func() error {
		err := f(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("returned before the stop")
		}
		return err
	}, func(error) { cancel() })
}

// Run starts every actor and blocks until all have returned. It returns
// nil after a requested stop, else the first actor's error.
func (g *Group) Run() error {
	if err := g.g.Run(); err != nil && !errors.Is(err, ErrStopped) {
		return err
	}
	return nil
}

// WorkContext returns the context in-flight work runs under: it carries
// ctx's values, is not cancelled when ctx is, and is cancelled grace after
// ctx is done (or when cancel is called). Handlers given it finish what
// they started after a stop signal, within the grace period.
func WorkContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var once sync.Once
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(work, func() { t.Stop() })
	})
	return work, func() {
		once.Do(func() {
			stop()
			cancel()
		})
	}
}
