package kvstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/natstest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// stalledKV is a real bucket whose key listings stall after a few keys, as
// nats.go's do when the bucket's stream loses its leader mid-listing: the
// end-of-listing marker never comes and the key channel closes only when
// the listing's context ends.
type stalledKV struct {
	jetstream.KeyValue
	keys []string
}

type stalledLister struct{ ch chan string }

func (l stalledLister) Keys() <-chan string { return l.ch }
func (l stalledLister) Stop() error         { return nil }

func (s stalledKV) ListKeysFiltered(ctx context.Context, _ ...string) (jetstream.KeyLister, error) {
	return s.stall(ctx), nil
}

func (s stalledKV) ListKeys(ctx context.Context, _ ...jetstream.WatchOpt) (jetstream.KeyLister, error) {
	return s.stall(ctx), nil
}

func (s stalledKV) stall(ctx context.Context) jetstream.KeyLister {
	l := stalledLister{ch: make(chan string, len(s.keys))}
	for _, k := range s.keys {
		l.ch <- k
	}
	go func() { <-ctx.Done(); close(l.ch) }()
	return l
}

// A stalled listing neither blocks a caller without a deadline forever
// (the cluster test's scan that hung silently with a node partitioned)
// nor passes for a complete one when the caller's deadline ends it.
func TestStalledListingIsAnError(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	snaps, err := NewSnapshots(ctx, js, BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{1, 2, 3} {
		if _, err := snaps.Put(ctx, 7, id, rcv.Snapshot{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	snaps.KV = stalledKV{KeyValue: snaps.KV, keys: []string{"7.1", "7.2"}}
	old := listTimeout
	listTimeout = 500 * time.Millisecond
	t.Cleanup(func() { listTimeout = old })

	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"no deadline", func() (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }},
		{"caller's deadline", func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 200*time.Millisecond) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cctx, cancel := tc.ctx()
			defer cancel()
			type result struct {
				ids []int64
				err error
			}
			done := make(chan result, 1)
			go func() { ids, err := snaps.IDs(cctx, 7); done <- result{ids, err} }()
			select {
			case r := <-done:
				if r.err == nil || !strings.Contains(r.err.Error(), "interrupted after 2 keys") {
					t.Fatalf("IDs = %v, %v; want an interrupted-listing error", r.ids, r.err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("IDs still blocked 5s into a stalled listing")
			}
		})
	}
}
