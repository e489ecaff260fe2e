package poller_test

import (
	"context"
	"errors"
	"iter"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/events/eventstest"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
	"github.com/incasso-io/incasso/internal/timers"
)

type harness struct {
	t      *testing.T
	sim    *ficsim.Server
	cid    int64
	src    *fic.Source
	js     jetstream.JetStream
	stream jetstream.Stream
	snaps  *kvstore.Snapshots
	p      *poller.Poller
	sched  *timers.Scheduler
	clock  *clock
	schema *jsonschema.Schema
}

type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = time.Until(t)
}

func newHarness(t *testing.T, cfg ficsim.Config) *harness {
	t.Helper()
	return newHarnessTB(t, t, cfg)
}

func newHarnessB(b *testing.B, cfg ficsim.Config) *harness {
	b.Helper()
	return newHarnessTB(b, &testing.T{}, cfg)
}

func newHarnessTB(t testing.TB, tt *testing.T, cfg ficsim.Config) *harness {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Companies == 0 {
		cfg.Companies = 1
	}
	sim, srv := ficsimtest.Start(t, cfg)
	client, err := fic.New(fic.Config{BaseURL: srv.URL, RetryBase: time.Millisecond, Quotas: fic.NewQuotas(fic.Limits{Disabled: true}, nil)}, fic.StaticToken(sim.Token()))
	if err != nil {
		t.Fatal(err)
	}
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	st, err := events.EnsureStream(ctx, js, events.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := kvstore.NewSnapshots(ctx, js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	sched, err := timers.New(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	sched.Clock = clk.Now
	h := &harness{t: tt, sim: sim, cid: sim.CompanyIDs()[0], src: &fic.Source{Client: client}, js: js, stream: st, snaps: snaps, sched: sched, clock: clk, schema: eventstest.Schema(t, "invoice-event.v1.json")}
	batches, err := kvstore.NewBatches(ctx, js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h.p = &poller.Poller{Snapshots: snaps, Publisher: &events.Publisher{JS: js}, Timers: sched, Now: clk.Now, Batches: batches}
	return h
}

func (h *harness) scan() poller.ScanResult {
	h.t.Helper()
	res, err := h.p.Scan(context.Background(), h.src, h.cid, nil)
	if err != nil {
		h.t.Fatalf("scan: %v", err)
	}
	return res
}

// each calls f with every event stored in the stream, in order, and
// checks it against the published JSON Schema.
func (h *harness) each(f func(e event.Event, d events.Data)) {
	h.t.Helper()
	ctx := context.Background()
	info, err := h.stream.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := h.stream.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		e, err := events.Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		if err != nil {
			h.t.Fatalf("stored event %d does not decode: %v", seq, err)
		}
		d, err := events.ParseData(e)
		if err != nil {
			h.t.Fatal(err)
		}
		eventstest.Validate(h.t, h.schema, e.Data())
		f(e, d)
	}
}

// published returns the events stored in the stream, by type.
func (h *harness) published() map[string][]events.Data {
	h.t.Helper()
	out := map[string][]events.Data{}
	h.each(func(e event.Event, d events.Data) { out[e.Type()] = append(out[e.Type()], d) })
	return out
}

func count(m map[string][]events.Data) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func TestInitialSyncAndIdempotentRescan(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 260})
	docs, _ := h.sim.Documents(h.cid)
	res := h.scan()
	if !res.Complete || res.Documents != len(docs) {
		t.Fatalf("scan: %+v, want %d documents", res, len(docs))
	}
	got := h.published()
	invoices, credits, overdue := 0, 0, 0
	for _, d := range docs {
		if d.Type == "credit_note" {
			credits++
			continue
		}
		invoices++
		for _, p := range d.Payments {
			if p.Status != "paid" && p.DueDate < rcv.DateIn(time.Now(), rcv.Rome).String() {
				overdue++
			}
		}
	}
	if len(got["invoice.created"]) != invoices || len(got["credit_note.created"]) != credits || len(got["invoice.overdue"]) != overdue {
		t.Fatalf("created %d/%d credit %d/%d overdue %d/%d", len(got["invoice.created"]), invoices, len(got["credit_note.created"]), credits, len(got["invoice.overdue"]), overdue)
	}
	total := count(got)
	rev := h.snapsRevision()
	res = h.scan()
	if res.Events != 0 || count(h.published()) != total || h.snapsRevision() != rev {
		t.Fatalf("rescan published %d events / wrote snapshots (rev %d -> %d)", res.Events, rev, h.snapsRevision())
	}
}

func (h *harness) snapsRevision() uint64 {
	st, err := h.snaps.KV.Status(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return st.(interface{ StreamInfo() *jetstream.StreamInfo }).StreamInfo().State.LastSeq
}

func TestEveryTransitionYieldsOneEvent(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 30})
	h.scan()
	base := h.published()
	amt := func(s string) *decimalT { return mustDec(s) }
	vat := int64(22)
	created, err := h.sim.CreateDocument(h.cid, ficsim.NewDocument{AmountNet: amt("1000"), VATRate: &vat, Installments: 2,
		DueDates: []string{time.Now().AddDate(0, 1, 0).Format(time.DateOnly), time.Now().AddDate(0, 2, 0).Format(time.DateOnly)}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.ID
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"created", func() error { return nil }, "invoice.created"},
		{"partially paid (split)", func() error {
			_, err := h.sim.Pay(h.cid, id, ficsim.PaymentSpec{Amount: amt("100")})
			return err
		}, "invoice.partially_paid"},
		{"amount changed", func() error {
			_, err := h.sim.UpdateDocument(h.cid, id, ficsim.DocumentUpdate{Subject: strPtr("nuovo"), EIStatus: strPtr("accepted")})
			return err
		}, "invoice.updated"},
		{"reversed", func() error { _, err := h.sim.Reverse(h.cid, id, nil); return err }, "invoice.reopened"},
		{"paid in full", func() error {
			for i := 0; i < 3; i++ {
				if _, err := h.sim.Pay(h.cid, id, ficsim.PaymentSpec{}); err != nil {
					return err
				}
			}
			return nil
		}, "invoice.paid"},
		{"deleted", func() error { return h.sim.DeleteDocument(h.cid, id) }, "invoice.deleted"},
		{"credit note", func() error {
			_, err := h.sim.CreateDocument(h.cid, ficsim.NewDocument{Type: "credit_note"})
			return err
		}, "credit_note.created"},
	}
	prev := base
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		h.scan()
		now := h.published()
		var diff []string
		for typ, list := range now {
			for i := len(prev[typ]); i < len(list); i++ {
				diff = append(diff, typ)
			}
		}
		if len(diff) != 1 || diff[0] != s.want {
			t.Fatalf("%s: new events %v, want [%s]", s.name, diff, s.want)
		}
		d := now[s.want][len(now[s.want])-1]
		switch s.want {
		case "invoice.partially_paid":
			if d.Document.AmountPaid != "100.00" || d.Document.AmountDue != "1120.00" || len(d.PaidInstallments) != 1 {
				t.Errorf("partially paid data: %+v", d.Document)
			}
		case "invoice.updated":
			if len(d.Changes) != 1 || d.Changes[0].Field != "e_invoice_status" {
				t.Errorf("changes: %+v", d.Changes)
			}
		case "invoice.paid":
			if d.Document.AmountDue != "0.00" || d.Document.AmountPaid != "1220.00" {
				t.Errorf("paid data: %+v", d.Document)
			}
		case "invoice.reopened":
			if d.Installment == nil || d.Installment.Status != "reversed" {
				t.Errorf("reopened data: %+v", d.Installment)
			}
		}
		prev = now
	}
}

func strPtr(s string) *string { return &s }

// crashingPublisher publishes, then "crashes" before the snapshot is saved.
type crashingPublisher struct {
	inner rcv.Publisher
	crash atomic.Bool
}

var errCrash = errors.New("simulated crash after publish")

func (c *crashingPublisher) Publish(ctx context.Context, ch []rcv.Change) error {
	if err := c.inner.Publish(ctx, ch); err != nil {
		return err
	}
	if c.crash.Load() {
		return errCrash
	}
	return nil
}

func TestCrashBetweenPublishAndSnapshotYieldsNoDuplicate(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 40})
	cp := &crashingPublisher{inner: h.p.Publisher}
	h.p.Publisher = cp
	cp.crash.Store(true)
	if _, err := h.p.Scan(context.Background(), h.src, h.cid, nil); !errors.Is(err, errCrash) {
		t.Fatalf("got %v", err)
	}
	for i := 0; i < 2; i++ { // crash again on the first document, then recover
		_, _ = h.p.Scan(context.Background(), h.src, h.cid, nil)
	}
	cp.crash.Store(false)
	h.scan()
	got := h.published()
	seen := map[int64]int{}
	for _, d := range got["invoice.created"] {
		seen[d.Document.ID]++
	}
	docs, _ := h.sim.Documents(h.cid)
	for _, d := range docs {
		if d.Type == "invoice" && seen[d.ID] != 1 {
			t.Fatalf("invoice %v created %d times", d.ID, seen[d.ID])
		}
	}
}

// failingSource fails on a given page of invoices.
type failingSource struct {
	rcv.InvoiceSource
	failPage int
}

func (f failingSource) Pages(ctx context.Context, cid int64, kind rcv.Kind) iter.Seq2[rcv.Page, error] {
	return func(yield func(rcv.Page, error) bool) {
		for p, err := range f.InvoiceSource.Pages(ctx, cid, kind) {
			if err == nil && kind == rcv.KindInvoice && p.Number == f.failPage {
				yield(rcv.Page{Number: p.Number}, errors.New("HTTP 500 on this page"))
				return
			}
			if !yield(p, err) {
				return
			}
		}
	}
}

func TestFailedOrShiftedScanNeverFalselyDeletes(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 350})
	h.scan()
	docs, _ := h.sim.Documents(h.cid)
	// Delete three documents, then scan with a failing page: no delete.
	for _, d := range docs[:3] {
		if err := h.sim.DeleteDocument(h.cid, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.p.Scan(context.Background(), failingSource{h.src, 2}, h.cid, nil); err == nil {
		t.Fatal("scan with a failing page succeeded")
	}
	if n := len(h.published()["invoice.deleted"]); n != 0 {
		t.Fatalf("failed scan deleted %d", n)
	}
	// A delete in the middle of the scan shifts pages: the skipped document
	// is confirmed alive with a GET and never announced as deleted.
	if err := h.sim.SetScanFault(h.cid, "delete", 3); err != nil {
		t.Fatal(err)
	}
	// The 3 earlier deletions are confirmed; the document skipped by the
	// shift is missing too but found alive; the one deleted mid-scan had
	// already been seen on page 1 and is caught by the next scan.
	res := h.scan()
	if res.Deleted != 3 || res.Missing != 4 {
		t.Fatalf("res %+v, want 3 deletions of 4 missing", res)
	}
	if res = h.scan(); res.Deleted != 1 || res.Missing != 1 {
		t.Fatalf("next scan: %+v, want the mid-scan deletion", res)
	}
	deleted := h.published()["invoice.deleted"]
	if len(deleted) != 4 {
		t.Fatalf("deleted events %d, want 4", len(deleted))
	}
	live := map[int64]bool{}
	after, _ := h.sim.Documents(h.cid)
	for _, d := range after {
		live[d.ID] = true
	}
	for _, d := range deleted {
		if live[d.Document.ID] {
			t.Errorf("live document %d announced deleted", d.Document.ID)
		}
	}
}

func TestOverdueFiresFromTimerWithoutFICRequests(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 5})
	due := rcv.DateIn(time.Now(), rcv.Rome).AddDays(10)
	created, err := h.sim.CreateDocument(h.cid, ficsim.NewDocument{Installments: 1, DueDates: []string{due.String()}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.ID
	h.scan()
	var fired atomic.Int32
	cc, err := h.sched.Consume(context.Background(), func(ctx context.Context, cid, doc int64) error {
		fired.Add(1)
		_, err := h.p.Fire(ctx, cid, doc)
		return err
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	overdueAt := poller.Rules{}.OverdueAt(rcv.Installment{DueDate: due})
	// Jump the clock to 2 s before the overdue instant and re-schedule
	// (as a scan would when it sees the invoice): the due_soon instant has
	// passed, so the scan publishes due_soon and sets the overdue timer.
	h.clock.Set(overdueAt.Add(-2 * time.Second))
	h.scan()
	h.sim.ResetStats()
	deadline := time.Now().Add(8 * time.Second)
	var ov *events.Data
	var got map[string][]events.Data
	for ov == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		got = h.published()
		for i, d := range got["invoice.overdue"] {
			if d.Document.ID == id {
				ov = &got["invoice.overdue"][i]
			}
		}
	}
	if ov == nil {
		t.Fatalf("no overdue event for %d; events %v", id, keys(got))
	}
	if len(got["invoice.due_soon"]) == 0 {
		t.Error("no due_soon event")
	}
	if fired.Load() == 0 {
		t.Error("the overdue event did not come from the timer")
	}
	if n := h.sim.Stats()[h.cid]; len(n) != 0 {
		t.Errorf("FIC requests while firing: %v", n)
	}
	if ov.Document.DaysOverdue != 1 {
		t.Errorf("days overdue %d", ov.Document.DaysOverdue)
	}
}

func keys(m map[string][]events.Data) []string {
	var out []string
	for k, v := range m {
		for range v {
			out = append(out, k)
		}
	}
	return out
}

// listedThen is a snapshot store that runs hook once, right after a scan
// has listed the stored ids: a concurrent writer acting between the listing
// and the document's page.
type listedThen struct {
	rcv.SnapshotStore
	once sync.Once
	hook func()
}

func (l *listedThen) IDs(ctx context.Context, cid int64) ([]int64, error) {
	ids, err := l.SnapshotStore.IDs(ctx, cid)
	l.once.Do(l.hook)
	return ids, err
}

// A scan does not read snapshots of documents that had none when it
// started. If one is written in between (here a webhook refresh) and the
// document changes before its page is read, the scan's first write loses
// compare-and-set and the document is diffed against what was written:
// created once, paid once, and the snapshot says paid.
func TestSnapshotWrittenDuringScanIsDiffedNotOverwritten(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 20})
	docs, _ := h.sim.Documents(h.cid)
	var id int64
	for _, d := range docs {
		if d.Type == "invoice" && d.Open() {
			id = d.ID
			break
		}
	}
	ctx := context.Background()
	h.p.Snapshots = &listedThen{SnapshotStore: h.snaps, hook: func() {
		if _, err := h.p.Refresh(ctx, h.src, h.cid, id); err != nil {
			t.Errorf("refresh: %v", err)
		}
		ficsimtest.PayInFull(t, h.sim, h.cid, id)
	}}
	h.scan()
	got := h.published()
	of := func(typ string) int {
		n := 0
		for _, d := range got[typ] {
			if d.Document.ID == id {
				n++
			}
		}
		return n
	}
	if c, p := of("invoice.created"), of("invoice.paid"); c != 1 || p != 1 {
		t.Fatalf("document %d: %d created, %d paid events, want 1 and 1", id, c, p)
	}
	snap, rev, err := h.snaps.Get(ctx, h.cid, id)
	if err != nil || rev == 0 || !snap.Invoice.FullyPaid() {
		t.Fatalf("snapshot of %d: rev %d, fully paid %v, err %v; want the paid version", id, rev, snap.Invoice.FullyPaid(), err)
	}
}
