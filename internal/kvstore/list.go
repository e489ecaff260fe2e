package kvstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// listTimeout bounds one listing of a bucket's keys.
var listTimeout = 30 * time.Second

// listKeys returns the keys of kv matching filters (none: every key).
//
// nats.go lists keys with a watcher that ends on a marker sent after the
// last key. If the bucket's stream loses its leader mid-listing (a node
// partitioned from the cluster), the marker never comes: the listing would
// block as long as ctx lives (forever for a context without a deadline,
// stalling a scan without a word), and when ctx ends the key channel is
// closed exactly as if the listing were complete. listKeys bounds the
// listing by listTimeout and reports one that ended early as an error, so
// a caller never mistakes part of a bucket for all of it.
func listKeys(ctx context.Context, kv jetstream.KeyValue, filters ...string) ([]string, error) {
	lctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	var (
		l   jetstream.KeyLister
		err error
	)
	if len(filters) == 0 {
		l, err = kv.ListKeys(lctx)
	} else {
		l, err = kv.ListKeysFiltered(lctx, filters...)
	}
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Stop() }()
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	if err := lctx.Err(); err != nil {
		return nil, fmt.Errorf("listing of bucket %s interrupted after %d keys: %w", kv.Bucket(), len(keys), err)
	}
	return keys, nil
}
