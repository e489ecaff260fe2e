// Package jsbatch publishes batches of JetStream messages asynchronously and
// awaits their acknowledgements together: one round of requests instead of
// a round trip per message, which is what bounds throughput when thousands
// of documents are written (events, snapshots, timers).
package jsbatch

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Pub is one message of a PublishAll batch, with its publish options (for
// example an expected last sequence for compare-and-set writes).
type Pub struct {
	Msg  *nats.Msg
	Opts []jetstream.PublishOpt
}

// StallWait bounds how long PublishAll waits for room in the connection's
// window of unacknowledged async publishes before it gives up on the rest of
// a batch. Many scans share one connection, so a full window is normal
// under load: JetStream's own default (200 ms) would turn it into errors.
const StallWait = 10 * time.Second

// PublishAll publishes a batch asynchronously and waits for every
// acknowledgement: one round of requests instead of a round trip per
// message, which is what bounds throughput when thousands of documents are
// written. It returns one error per message: nil when stored (the ack, with
// Duplicate set for a deduplicated message, is in acks), else why not —
// including a failed expectation such as WithExpectLastSequencePerSubject.
// A message that cannot be sent fails with the rest of the batch; a
// cancelled ctx fails the messages not yet acknowledged. Safe for concurrent
// use.
func PublishAll(ctx context.Context, js jetstream.JetStream, batch []Pub) (acks []*jetstream.PubAck, errs []error) {
	acks, errs = make([]*jetstream.PubAck, len(batch)), make([]error, len(batch))
	futures := make([]jetstream.PubAckFuture, len(batch))
	for i, p := range batch {
		f, err := js.PublishMsgAsync(p.Msg, slices.Concat(p.Opts, []jetstream.PublishOpt{jetstream.WithStallWait(StallWait)})...)
		if err != nil {
			for j := i; j < len(batch); j++ {
				errs[j] = fmt.Errorf("publish %s: %w", batch[j].Msg.Subject, err)
			}
			batch = batch[:i]
			break
		}
		futures[i] = f
	}
	for i := range batch {
		select {
		case ack := <-futures[i].Ok():
			acks[i] = ack
		case err := <-futures[i].Err():
			errs[i] = err
		case <-ctx.Done():
			for j := i; j < len(batch); j++ {
				errs[j] = ctx.Err()
			}
			return acks, errs
		}
	}
	return acks, errs
}
