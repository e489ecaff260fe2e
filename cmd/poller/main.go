// Command poller turns a Fatture in Cloud account into receivables events
// on NATS JetStream: webhooks first, reconciliation scans within FIC's quota,
// durable timers for due-soon and overdue.
//
//	poller [run]     run the pipeline (default)
//	poller connect   authorize a FIC account with OAuth and store its token
//
// Configuration comes from the environment (see README); with NATS_URL unset
// an embedded NATS server with JetStream listens on 127.0.0.1:4222. The
// process itself lives in internal/pollerapp so the demo can embed it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	_ "time/tzdata" // Europe/Rome in FROM scratch images

	_ "golang.org/x/crypto/x509roots/fallback" // CA roots in the binary (FROM scratch images)

	"github.com/incasso-io/incasso/internal/pollerapp"
)

func main() {
	gcDefaults()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := pollerapp.Command(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "poller:", err)
		os.Exit(1)
	}
}

// gcDefaults: the poller's live heap is small and bounded (the pages of at
// most POLLER_MAX_CONCURRENT_SCANS scans) while it allocates fast, so with
// Go's default GOGC=100 a sync spends a large share of its CPU collecting.
// Unless the operator sets Go's own GOGC or GOMEMLIMIT, collect less often
// (GOGC=400) under a soft memory limit of 256 MiB that keeps RSS in budget.
func gcDefaults() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(256 << 20)
	}
}
