package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/incasso-io/incasso/internal/delivery"
	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/safehttp"
)

// receiver is a platform's endpoint: it verifies every request with the
// Standard Webhooks library and records what it accepted.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	got    []received
	down   atomic.Bool // answer 503
	status atomic.Int32
	bad    atomic.Int32 // requests whose signature did not verify
}

type received struct {
	id, typ, subject string
	seq              int
	header           http.Header
	body             []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		secret := r.secret
		r.mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil || wh.Verify(body, req.Header) != nil {
			r.bad.Add(1)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if s := r.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		rc := received{id: req.Header.Get("webhook-id"), header: req.Header.Clone(), body: body}
		if req.Header.Get("Content-Type") == "application/cloudevents+json" {
			var e event.Event
			if err := json.Unmarshal(body, &e); err != nil {
				r.t.Errorf("structured body: %v", err)
			}
			rc.typ, rc.subject = e.Type(), e.Subject()
			var d struct{ Seq int }
			_ = json.Unmarshal(e.Data(), &d)
			rc.seq = d.Seq
		} else {
			rc.typ, rc.subject = req.Header.Get("ce-type"), req.Header.Get("ce-subject")
			var d struct{ Seq int }
			_ = json.Unmarshal(body, &d)
			rc.seq = d.Seq
		}
		r.mu.Lock()
		r.got = append(r.got, rc)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

type env struct {
	js    jetstream.JetStream
	store *kvstore.Endpoints
	log   *kvstore.DeliveryLog
	m     *delivery.Manager
	pub   *events.Publisher
}

func setup(t testing.TB, tune func(*delivery.Manager)) *env {
	t.Helper()
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, js, events.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	store, err := kvstore.NewEndpoints(ctx, js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	dlog, err := kvstore.NewDeliveryLog(ctx, js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	local := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	m := &delivery.Manager{JS: js, Store: store, Log: dlog, Refresh: 50 * time.Millisecond, AckWait: 2 * time.Second, PinnedTTL: 2 * time.Second,
		Schedule: []time.Duration{0, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond},
		Client: func(u *url.URL) *http.Client {
			port, _ := strconv.Atoi(u.Port())
			return safehttp.Policy{AllowHTTP: true, AllowNets: local, Ports: []int{port}, Timeout: 5 * time.Second}.Client()
		}}
	if tune != nil {
		tune(m)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &env{js: js, store: store, log: dlog, m: m, pub: &events.Publisher{JS: js}}
}

func (e *env) endpoint(t *testing.T, r *receiver, mut func(*delivery.Endpoint)) delivery.Endpoint {
	t.Helper()
	ep := delivery.Endpoint{ID: delivery.NewID(), URL: r.srv.URL + "/hooks/incasso", CreatedAt: time.Now()}
	if mut != nil {
		mut(&ep)
	}
	ep.Rotate(time.Now(), 0)
	if err := ep.Validate(nil); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.secret = ep.Secrets[0].Key
	r.mu.Unlock()
	if err := e.store.Create(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	// The worker's consumer starts at new events: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.js.Consumer(context.Background(), events.StreamName, delivery.ConsumerName(ep.ID)); err == nil {
			return ep
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("endpoint consumer not created")
	return ep
}

// publish puts the seq-th event of document doc of company cid on the stream.
func (e *env) publish(t *testing.T, cid, doc int64, seq int, typ string) string {
	t.Helper()
	ev := event.New()
	id := fmt.Sprintf("%d-%d-%d-%s", cid, doc, seq, typ)
	ev.SetID(id)
	ev.SetSource(events.Source(cid))
	ev.SetType(typ)
	ev.SetSubject("invoices/" + strconv.FormatInt(doc, 10))
	ev.SetTime(time.Now().UTC())
	if err := ev.SetData(event.ApplicationJSON, map[string]int{"seq": seq}); err != nil {
		t.Fatal(err)
	}
	if err := e.pub.PublishEvent(context.Background(), events.Subject(cid, typ), ev); err != nil {
		t.Fatal(err)
	}
	return id
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// checkOrder: each id once, and per document in publish order.
func checkOrder(t *testing.T, got []received, want int) {
	t.Helper()
	seen := map[string]int{}
	last := map[string]int{}
	for _, r := range got {
		seen[r.id]++
		if r.seq <= last[r.subject] {
			t.Errorf("%s: event %d after %d (out of order)", r.subject, r.seq, last[r.subject])
		}
		last[r.subject] = r.seq
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if len(seen) != want {
		t.Errorf("%d distinct events delivered, want %d", len(seen), want)
	}
}

// A healthy endpoint gets every event of its filter once, signed, in order
// per document; events outside the filter are not sent.
func TestEveryEventOnceInOrder(t *testing.T) {
	e := setup(t, nil)
	r := newReceiver(t)
	e.endpoint(t, r, func(ep *delivery.Endpoint) {
		ep.Companies = []int64{1, 2}
		ep.Types = []string{"invoice.*", "dunning.*"}
	})
	want := 0
	for seq := 1; seq <= 20; seq++ {
		for doc := int64(1); doc <= 5; doc++ {
			e.publish(t, 1+doc%2, doc, seq, "invoice.updated")
			want++
		}
		e.publish(t, 3, 9, seq, "invoice.updated")       // another company
		e.publish(t, 1, 9, seq, "credit_note.created")   // another type
		e.publish(t, 2, 8, seq, "dunning.reminder_sent") // a family that is in
		want++
	}
	waitFor(t, "deliveries", 20*time.Second, func() bool { return len(r.received()) >= want })
	time.Sleep(200 * time.Millisecond)
	got := r.received()
	checkOrder(t, got, want)
	if r.bad.Load() != 0 {
		t.Errorf("%d requests with a bad signature", r.bad.Load())
	}
	h := got[0].header
	if !strings.HasPrefix(h.Get("webhook-signature"), "v1,") || h.Get("webhook-timestamp") == "" || h.Get("Content-Type") != "application/cloudevents+json" {
		t.Errorf("headers: %v", h)
	}
}

// An endpoint down for a while gets everything afterwards, in order per
// document; the log shows the retries.
func TestEndpointDownGetsEverythingAfterwards(t *testing.T) {
	e := setup(t, nil)
	r := newReceiver(t)
	ep := e.endpoint(t, r, nil)
	r.down.Store(true)
	want := 0
	for seq := 1; seq <= 10; seq++ {
		for doc := int64(1); doc <= 6; doc++ {
			e.publish(t, 1, doc, seq, "invoice.updated")
			want++
		}
	}
	time.Sleep(400 * time.Millisecond)
	if n := len(r.received()); n != 0 {
		t.Fatalf("%d delivered while down", n)
	}
	r.down.Store(false)
	waitFor(t, "deliveries after the outage", 20*time.Second, func() bool { return len(r.received()) >= want })
	time.Sleep(200 * time.Millisecond)
	checkOrder(t, r.received(), want)
	log, err := e.log.Recent(context.Background(), ep.ID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, a := range log {
		outcomes[a.Outcome]++
	}
	if outcomes["retrying"] == 0 || outcomes["delivered"] != want {
		t.Errorf("log outcomes %v", outcomes)
	}
	cur, _ := e.store.Get(context.Background(), ep.ID)
	if !cur.FailingSince.IsZero() || cur.Disabled {
		t.Errorf("after recovery: %+v", cur)
	}
}

// 410 disables at once; failing for DisableAfter disables with an alert;
// events published meanwhile wait and arrive once the endpoint is enabled
// again.
func TestDisabledOnGoneAndAfterDaysOfFailure(t *testing.T) {
	var alerts atomic.Int32
	e := setup(t, func(m *delivery.Manager) {
		m.DisableAfter = 300 * time.Millisecond
		m.OnDisabled = func(delivery.Endpoint) { alerts.Add(1) }
	})
	gone, failing := newReceiver(t), newReceiver(t)
	g := e.endpoint(t, gone, func(ep *delivery.Endpoint) { ep.Types = []string{"invoice.updated"} })
	f := e.endpoint(t, failing, func(ep *delivery.Endpoint) { ep.Types = []string{"invoice.created"} })
	gone.status.Store(http.StatusGone)
	failing.down.Store(true)
	e.publish(t, 1, 1, 1, "invoice.updated")
	e.publish(t, 1, 1, 2, "invoice.created")
	waitFor(t, "both disabled", 10*time.Second, func() bool {
		a, _ := e.store.Get(context.Background(), g.ID)
		b, _ := e.store.Get(context.Background(), f.ID)
		return a.Disabled && b.Disabled
	})
	a, _ := e.store.Get(context.Background(), g.ID)
	b, _ := e.store.Get(context.Background(), f.ID)
	if !strings.Contains(a.DisabledReason, "410") || !strings.Contains(b.DisabledReason, "failing since") || alerts.Load() != 2 {
		t.Errorf("reasons %q / %q, %d alerts", a.DisabledReason, b.DisabledReason, alerts.Load())
	}
	// Re-enabled, the failing endpoint gets what waited plus what follows.
	failing.down.Store(false)
	e.publish(t, 1, 1, 3, "invoice.created")
	if _, err := e.store.Update(context.Background(), f.ID, func(ep *delivery.Endpoint) error {
		ep.Disabled, ep.DisabledReason, ep.FailingSince = false, "", time.Time{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deliveries after re-enabling", 10*time.Second, func() bool { return len(failing.received()) == 2 })
	checkOrder(t, failing.received(), 2)
}

// Replay re-delivers from a stream sequence with the same ids; a test event
// reaches the endpoint signed; binary mode carries ce-* headers.
func TestReplayTestEventAndBinaryMode(t *testing.T) {
	e := setup(t, nil)
	r := newReceiver(t)
	ep := e.endpoint(t, r, func(ep *delivery.Endpoint) { ep.Mode = delivery.Binary })
	var ids []string
	for seq := 1; seq <= 5; seq++ {
		ids = append(ids, e.publish(t, 1, 1, seq, "invoice.updated"))
	}
	waitFor(t, "first delivery", 10*time.Second, func() bool { return len(r.received()) == 5 })
	if h := r.received()[0].header; h.Get("ce-id") != ids[0] || h.Get("ce-type") != "invoice.updated" || h.Get("Content-Type") != "application/json" {
		t.Errorf("binary mode headers: %v", h)
	}
	st, err := e.m.Replay(context.Background(), ep.ID, delivery.ReplayFrom{Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay", 10*time.Second, func() bool { s, _ := e.m.Replays(ep.ID); return s.Done })
	if s, _ := e.m.Replays(ep.ID); s.Error != "" || s.Delivered != 5 || s.To != st.To {
		t.Errorf("replay status %+v", s)
	}
	got := r.received()
	if len(got) != 10 {
		t.Fatalf("%d received, want 10", len(got))
	}
	for i := 0; i < 5; i++ {
		if got[5+i].id != ids[i] {
			t.Errorf("replayed #%d has id %s, want %s", i, got[5+i].id, ids[i])
		}
	}
	a, err := e.m.SendTest(context.Background(), ep.ID)
	if err != nil || a.Status != http.StatusNoContent {
		t.Fatalf("test event: %+v %v", a, err)
	}
	if last := r.received()[10]; last.typ != delivery.TestEventType {
		t.Errorf("test event type %q", last.typ)
	}
}

// A rotated secret keeps signing during its grace period, so a receiver
// still on the old one verifies; after it, only the new one signs.
func TestSecretRotation(t *testing.T) {
	ep := delivery.Endpoint{ID: "ep_1", URL: "https://platform.example/hooks"}
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	old := ep.Rotate(now, 0)
	fresh := ep.Rotate(now.Add(time.Hour), 24*time.Hour)
	ev := event.New()
	ev.SetID("1-1-1-invoice.paid")
	ev.SetSource("/fic/companies/1")
	ev.SetType("invoice.paid")
	for _, tc := range []struct {
		at      time.Time
		key     string
		verify  bool
		sigs    int
		comment string
	}{
		{now.Add(2 * time.Hour), old, true, 2, "old secret within the grace period"},
		{now.Add(2 * time.Hour), fresh, true, 2, "new secret"},
		{now.Add(26 * time.Hour), old, false, 1, "old secret after the grace period"},
		{now.Add(26 * time.Hour), fresh, true, 1, "new secret after the grace period"},
	} {
		req, err := delivery.Request(context.Background(), ep, ev, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(req.Body)
		wh, _ := standardwebhooks.NewWebhook(tc.key)
		err = wh.VerifyIgnoringTimestamp(body, req.Header)
		if (err == nil) != tc.verify || len(strings.Fields(req.Header.Get("webhook-signature"))) != tc.sigs {
			t.Errorf("%s: verify %v, signatures %q", tc.comment, err, req.Header.Get("webhook-signature"))
		}
	}
}

func TestEndpointValidation(t *testing.T) {
	guard := safehttp.Policy{}
	for _, u := range []string{"http://platform.example/h", "https://10.0.0.5/h", "https://169.254.169.254/latest", "https://u:p@platform.example/h", "ftp://x/y", "/relative"} {
		ep := delivery.Endpoint{URL: u}
		if err := ep.Validate(guard.CheckURL); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	for _, typ := range []string{"invoice.>", "inv*", "a b"} {
		ep := delivery.Endpoint{URL: "https://platform.example/h", Types: []string{typ}}
		if err := ep.Validate(nil); err == nil {
			t.Errorf("type %q accepted", typ)
		}
	}
	ok := delivery.Endpoint{URL: "https://platform.example/h", Types: []string{"invoice.paid", "dunning.*", "*"}}
	if err := ok.Validate(nil); err != nil || ok.Mode != delivery.Structured {
		t.Errorf("valid endpoint: %v (mode %q)", err, ok.Mode)
	}
}
