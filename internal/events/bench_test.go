package events_test

import (
	"context"
	"testing"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/natstest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// BenchmarkPublish publishes batches of 100 distinct transitions (as a scan
// page does) to the file-backed events stream with a 24h dedup window, and
// then re-publishes the same batch to measure the dedup path.
func BenchmarkPublish(b *testing.B) {
	_, _, js := natstest.MustRunJetStream(b)
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, js, events.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	p := &events.Publisher{JS: js}
	base := sampleChange()
	batch := func(n int) []rcv.Change {
		out := make([]rcv.Change, 100)
		for i := range out {
			c := base
			c.Invoice.ID = int64(n*100 + i + 1)
			c.Seq = uint64(n + 1)
			out[i] = c
		}
		return out
	}
	b.Run("new", func(b *testing.B) {
		n := 0
		for b.Loop() {
			if err := p.Publish(ctx, batch(n)); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n*100)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("duplicates", func(b *testing.B) {
		dup := batch(0)
		n := 0
		for b.Loop() {
			if err := p.Publish(ctx, dup); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n*100)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkBuildEncode measures turning one transition into a NATS message
// (CloudEvent built and validated, data encoded, headers percent-encoded):
// the poller's CPU per event before the network.
func BenchmarkBuildEncode(b *testing.B) {
	c := sampleChange()
	b.ReportAllocs()
	for b.Loop() {
		subj, e, err := events.Build(c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := events.Encode(subj, e); err != nil {
			b.Fatal(err)
		}
	}
}
