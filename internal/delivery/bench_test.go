package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/delivery"
	"github.com/incasso-io/incasso/internal/events"
)

// BenchmarkHTTPDelivery measures deliveries per second to a local endpoint
// (4 lanes, 64 documents), events published as fast as possible; the
// latencies then include the queue.
func BenchmarkHTTPDelivery(b *testing.B) { benchDelivery(b, 0) }

// BenchmarkHTTPDeliveryLatency publishes 200 events/s (below the
// throughput) and measures the latency HTTP delivery adds over the NATS
// stream: for every event, publish to the endpoint's receipt, against
// publish to a plain JetStream consumer's receipt in the same run (the
// baseline).
func BenchmarkHTTPDeliveryLatency(b *testing.B) { benchDelivery(b, 5*time.Millisecond) }

func benchDelivery(b *testing.B, pace time.Duration) {
	e := setup(b, nil)
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var httpLat, natsLat []time.Duration
	done := make(chan struct{}, 1)
	want := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		at := time.Now()
		mu.Lock()
		if t0, ok := sent[r.Header.Get("webhook-id")]; ok {
			httpLat = append(httpLat, at.Sub(t0))
			if len(httpLat) == want {
				done <- struct{}{}
			}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	ep := delivery.Endpoint{ID: delivery.NewID(), URL: recv.URL, CreatedAt: time.Now()}
	ep.Rotate(time.Now(), 0)
	_ = ep.Validate(nil)
	if err := e.store.Create(context.Background(), ep); err != nil {
		b.Fatal(err)
	}
	for {
		if _, err := e.js.Consumer(context.Background(), events.StreamName, delivery.ConsumerName(ep.ID)); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Baseline: a plain consumer on the same stream.
	cons, err := e.js.CreateOrUpdateConsumer(context.Background(), events.StreamName, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		at := time.Now()
		mu.Lock()
		if t0, ok := sent[m.Headers().Get("ce-id")]; ok {
			natsLat = append(natsLat, at.Sub(t0))
		}
		mu.Unlock()
		_ = m.Ack()
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	b.ResetTimer()
	start := time.Now()
	mu.Lock()
	want = b.N
	mu.Unlock()
	for i := 0; i < b.N; i++ {
		ev := event.New()
		id := fmt.Sprintf("bench-%d", i)
		ev.SetID(id)
		ev.SetSource(events.Source(1))
		ev.SetType("invoice.updated")
		ev.SetSubject("invoices/" + strconv.Itoa(i%64))
		body, _ := json.Marshal(map[string]int{"seq": i})
		_ = ev.SetData(event.ApplicationJSON, json.RawMessage(body))
		mu.Lock()
		sent[id] = time.Now()
		mu.Unlock()
		if err := e.pub.PublishEvent(context.Background(), events.Subject(1, "invoice.updated"), ev); err != nil {
			b.Fatal(err)
		}
		if pace > 0 {
			time.Sleep(pace)
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("only %d of %d delivered", len(httpLat), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	pct := func(d []time.Duration, p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(httpLat, 0.5), "http-p50-ms")
	b.ReportMetric(pct(httpLat, 0.99), "http-p99-ms")
	b.ReportMetric(pct(natsLat, 0.5), "nats-p50-ms")
	b.ReportMetric(pct(natsLat, 0.99), "nats-p99-ms")
}
