package poller_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// stored is one event as a subscriber reads it from the stream.
type stored struct {
	id, typ string
	doc     int64
	seq     uint64
}

// stream returns every stored event of document doc (0: all), in stream
// order, and fails on a duplicated id or a docseq out of order.
func (h *harness) events(doc int64) []stored {
	h.t.Helper()
	var out []stored
	ids := map[string]bool{}
	last := map[int64]uint64{}
	h.each(func(e event.Event, d events.Data) {
		s, _ := strconv.ParseUint(fmt.Sprint(e.Extensions()[events.SeqExtension]), 10, 64)
		if ids[e.ID()] {
			h.t.Errorf("event id %s stored twice", e.ID())
		}
		ids[e.ID()] = true
		if s <= last[d.Document.ID] {
			h.t.Errorf("document %d: docseq %d after %d", d.Document.ID, s, last[d.Document.ID])
		}
		last[d.Document.ID] = s
		if doc == 0 || d.Document.ID == doc {
			out = append(out, stored{id: e.ID(), typ: e.Type(), doc: d.Document.ID, seq: s})
		}
	})
	return out
}

func typesOf(evs []stored) string {
	var b []string
	for _, e := range evs {
		b = append(b, e.typ)
	}
	return strings.Join(b, ",")
}

func (h *harness) refresh(id int64) {
	h.t.Helper()
	if _, err := h.p.Refresh(context.Background(), h.src, h.cid, id); err != nil {
		h.t.Fatalf("refresh %d: %v", id, err)
	}
}

func future(days int) string { return time.Now().AddDate(0, 0, days).Format(time.DateOnly) }

// A transition that really happens again is published again: pay, reverse,
// pay; a partial payment twice; a credit note paid, reversed, paid; a due
// date moved and moved back; an e-invoice status back and forth; a document
// deleted and restored from FIC's bin (issue #12, repro 1: each of these
// lost its repeat to JetStream's duplicate window, whose ids were derived
// from the transition's content).
func TestRepeatedTransitionsArePublishedAgain(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 5})
	h.scan()
	zero := 0
	newInvoice := func(n int, dues ...string) int64 {
		t.Helper()
		m, err := h.sim.CreateDocument(h.cid, ficsim.NewDocument{AmountNet: mustDec("1000"), Installments: n, DueDates: dues})
		if err != nil {
			t.Fatal(err)
		}
		id := m.ID
		h.refresh(id)
		return id
	}
	must := func(_ ficsim.Document, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		run  func() int64
		want string
	}{
		{"pay, reverse, pay", func() int64 {
			id := newInvoice(1, future(20))
			for _, f := range []func() (ficsim.Document, error){
				func() (ficsim.Document, error) { return h.sim.Pay(h.cid, id, ficsim.PaymentSpec{}) },
				func() (ficsim.Document, error) { return h.sim.Reverse(h.cid, id, &zero) },
				func() (ficsim.Document, error) { return h.sim.Pay(h.cid, id, ficsim.PaymentSpec{Installment: &zero}) },
			} {
				must(f())
				h.refresh(id)
			}
			return id
		}, "invoice.created,invoice.paid,invoice.reopened,invoice.paid"},
		{"partially paid again", func() int64 {
			id := newInvoice(2, future(20), future(50))
			must(h.sim.Pay(h.cid, id, ficsim.PaymentSpec{Installment: &zero}))
			h.refresh(id)
			must(h.sim.Reverse(h.cid, id, &zero))
			h.refresh(id)
			must(h.sim.Pay(h.cid, id, ficsim.PaymentSpec{Installment: &zero}))
			h.refresh(id)
			return id
		}, "invoice.created,invoice.partially_paid,invoice.reopened,invoice.partially_paid"},
		{"due date moved and moved back", func() int64 {
			id := newInvoice(1, future(-10))
			must(h.sim.SetDueDate(h.cid, id, 0, future(30)))
			h.refresh(id)
			must(h.sim.SetDueDate(h.cid, id, 0, future(-10)))
			h.refresh(id)
			return id
		}, "invoice.created,invoice.overdue,invoice.updated,invoice.updated,invoice.overdue"},
		{"e-invoice status back and forth", func() int64 {
			id := newInvoice(1, future(20))
			for _, st := range []string{"accepted", "rejected", "accepted"} {
				st := st
				must(h.sim.UpdateDocument(h.cid, id, ficsim.DocumentUpdate{EIStatus: &st}))
				h.refresh(id)
			}
			return id
		}, "invoice.created,invoice.updated,invoice.updated,invoice.updated"},
		{"credit note paid, reversed, paid", func() int64 {
			inv := newInvoice(1, future(20))
			m, err := h.sim.CreateDocument(h.cid, ficsim.NewDocument{Type: "credit_note", InvoiceID: inv})
			if err != nil {
				t.Fatal(err)
			}
			id := m.ID
			h.refresh(id)
			pay := func() { must(h.sim.Pay(h.cid, id, ficsim.PaymentSpec{Installment: &zero})) }
			reverse := func() { must(h.sim.Reverse(h.cid, id, &zero)) }
			ops := []func(){pay, reverse, pay}
			if m.Payments[0].Status == "paid" { // the sandbox issues some already paid
				ops = []func(){reverse, pay, reverse}
			}
			for _, op := range ops {
				op()
				h.refresh(id)
			}
			return id
		}, "credit_note.created,credit_note.updated,credit_note.updated,credit_note.updated"},
		{"deleted and restored from the bin", func() int64 {
			id := newInvoice(1, future(-5))
			if err := h.sim.DeleteDocument(h.cid, id); err != nil {
				t.Fatal(err)
			}
			h.refresh(id)
			if _, err := h.sim.RestoreDocument(h.cid, id); err != nil {
				t.Fatal(err)
			}
			h.refresh(id)
			// And once more, through a scan instead of a webhook refresh.
			if err := h.sim.DeleteDocument(h.cid, id); err != nil {
				t.Fatal(err)
			}
			h.scan()
			if _, err := h.sim.RestoreDocument(h.cid, id); err != nil {
				t.Fatal(err)
			}
			h.scan()
			return id
		}, "invoice.created,invoice.overdue,invoice.deleted,invoice.created,invoice.overdue,invoice.deleted,invoice.created,invoice.overdue"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.run()
			got := h.events(id)
			if typesOf(got) != tc.want {
				t.Fatalf("stream has %s\nwant       %s", typesOf(got), tc.want)
			}
			for i, e := range got {
				if e.seq != uint64(i+1) {
					t.Errorf("event %d (%s) has docseq %d", i, e.typ, e.seq)
				}
			}
		})
	}
}

// refuseWrites makes the snapshot bucket refuse every new key (max_msgs at
// the current count, discard new), or lets writes through again.
func (h *harness) refuseWrites(refuse bool) {
	h.t.Helper()
	ctx := context.Background()
	st, err := h.js.Stream(ctx, "KV_incasso_snapshots")
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := info.Config
	cfg.Discard, cfg.MaxMsgs = jetstream.DiscardNew, -1
	if refuse {
		cfg.MaxMsgs = int64(info.State.Msgs)
	}
	if _, err := h.js.UpdateStream(ctx, cfg); err != nil {
		h.t.Fatal(err)
	}
}

// The crash window between publishing and saving the snapshot (issue #12,
// repro 2): with the snapshot bucket refusing writes, a new invoice must
// not be published without its state; once writes go through again, what
// happened to it meanwhile (a payment) is published after its creation.
func TestRefusedSnapshotWritePublishesNothingAndLosesNothing(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 5})
	h.scan()
	m, err := h.sim.CreateDocument(h.cid, ficsim.NewDocument{AmountNet: mustDec("500"), Installments: 1, DueDates: []string{future(20)}})
	if err != nil {
		t.Fatal(err)
	}
	id := m.ID
	h.refuseWrites(true)
	if _, err := h.p.Refresh(context.Background(), h.src, h.cid, id); err == nil {
		t.Fatal("the refresh succeeded although the snapshot could not be saved")
	}
	if got := h.events(id); len(got) != 0 {
		t.Fatalf("published without a saved state: %s", typesOf(got))
	}
	h.refuseWrites(false)
	h.refresh(id) // the retry of the notification
	ficsimtest.PayInFull(t, h.sim, h.cid, id)
	h.refresh(id)
	if got := typesOf(h.events(id)); got != "invoice.created,invoice.paid" {
		t.Fatalf("stream has %s, want invoice.created,invoice.paid", got)
	}
}

// flakyStore fails the Nth Put (and every PutAll write after it) as a
// poller dying right after a step would: failAfterIntent lets the write
// that saves pending transitions through and fails the one that clears them.
type flakyStore struct {
	rcv.SnapshotStore
	fail atomic.Bool
}

var errDied = errors.New("poller died here")

func (f *flakyStore) Put(ctx context.Context, cid, id int64, s rcv.Snapshot, rev uint64) (uint64, error) {
	if f.fail.Load() && len(s.Pending) == 0 {
		return 0, errDied // the intent (with pending) is saved, the clear is not
	}
	return f.SnapshotStore.Put(ctx, cid, id, s, rev)
}

func (f *flakyStore) PutAll(ctx context.Context, ws []rcv.SnapshotWrite) ([]uint64, []error) {
	revs, errs := make([]uint64, len(ws)), make([]error, len(ws))
	for i, w := range ws {
		revs[i], errs[i] = f.Put(ctx, w.CompanyID, w.ID, w.Snapshot, w.Rev)
	}
	return revs, errs
}

// A poller that dies after publishing and before clearing the pending
// transitions (and after publishing, before saving the snapshot, in the old
// protocol), followed by a change while it is down: the next look publishes
// the new transition once, with the right previous state, and nothing twice.
func TestDeathAfterPublishThenChangeLosesNothing(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 5})
	fs := &flakyStore{SnapshotStore: h.snaps}
	h.p.Snapshots = fs
	h.scan()
	m, err := h.sim.CreateDocument(h.cid, ficsim.NewDocument{AmountNet: mustDec("500"), Installments: 1, DueDates: []string{future(20)}})
	if err != nil {
		t.Fatal(err)
	}
	id := m.ID
	fs.fail.Store(true)
	h.refresh(id) // published; clearing failed (logged, not an error)
	ficsimtest.PayInFull(t, h.sim, h.cid, id)
	_, _ = h.p.Refresh(context.Background(), h.src, h.cid, id) // dies again after publishing paid
	must := func(_ ficsim.Document, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	zero := 0
	must(h.sim.Reverse(h.cid, id, &zero))
	fs.fail.Store(false)
	h.scan() // recovery through a scan this time
	must(h.sim.Pay(h.cid, id, ficsim.PaymentSpec{}))
	h.refresh(id)
	got := h.events(id)
	if typesOf(got) != "invoice.created,invoice.paid,invoice.reopened,invoice.paid" {
		t.Fatalf("stream has %s", typesOf(got))
	}
	snap, _, _ := h.snaps.Get(context.Background(), h.cid, id)
	if len(snap.Pending) != 0 || snap.Seq != 4 {
		t.Fatalf("snapshot after recovery: seq %d, %d pending", snap.Seq, len(snap.Pending))
	}
}

// failPublisher fails every publish while fail is set.
type failPublisher struct {
	inner rcv.Publisher
	fail  atomic.Bool
}

func (f *failPublisher) Publish(ctx context.Context, ch []rcv.Change) error {
	if f.fail.Load() && len(ch) > 0 {
		return errors.New("JetStream unavailable")
	}
	return f.inner.Publish(ctx, ch)
}

// A publish that fails after the intent is saved leaves the transitions
// pending; whatever path looks at the document next (a fired timer here)
// publishes them, in order, before anything new.
func TestPendingTransitionsPublishedByTheNextLook(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 5})
	h.scan()
	fp := &failPublisher{inner: h.p.Publisher}
	h.p.Publisher = fp
	m, err := h.sim.CreateDocument(h.cid, ficsim.NewDocument{AmountNet: mustDec("500"), Installments: 1, DueDates: []string{future(-3)}})
	if err != nil {
		t.Fatal(err)
	}
	id := m.ID
	fp.fail.Store(true)
	if _, err := h.p.Refresh(context.Background(), h.src, h.cid, id); err == nil {
		t.Fatal("want the publish error")
	}
	fp.fail.Store(false)
	if _, err := h.p.Fire(context.Background(), h.cid, id); err != nil {
		t.Fatal(err)
	}
	if got := typesOf(h.events(id)); got != "invoice.created,invoice.overdue" {
		t.Fatalf("stream has %s", got)
	}
	if got := h.events(id); !slices.IsSortedFunc(got, func(a, b stored) int { return int(a.seq) - int(b.seq) }) {
		t.Fatal("out of order")
	}
}

// A burst of changes is answered with the company's pages when that costs
// fewer requests than single fetches: 1,000 changed invoices of a company
// of 5,000 cost 50 requests, not 1,000 (issue #12, repro 4); a few cost
// their GETs.
func TestRefreshManyListsPagesWhenCheaper(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 5000, Quotas: ficsim.QuotaConfig{Off: true}})
	h.scan()
	open, _, err := h.sim.InvoiceIDs(h.cid)
	if err != nil {
		t.Fatal(err)
	}
	var changed []int64
	for i := 0; i < len(open) && len(changed) < 1000; i++ {
		if _, err := h.sim.Pay(h.cid, open[i], ficsim.PaymentSpec{}); err != nil {
			t.Fatal(err)
		}
		changed = append(changed, open[i])
	}
	if len(changed) < 1000 {
		t.Fatalf("only %d open invoices to change", len(changed))
	}
	before := len(h.events(0))
	h.sim.ResetStats()
	done, reqs, err := h.p.RefreshMany(context.Background(), h.src, h.cid, changed)
	if err != nil {
		t.Fatal(err)
	}
	st := h.sim.Stats()[h.cid]
	total := 0
	for _, n := range st {
		total += n
	}
	if len(done) != len(changed) || total > 50 || reqs != total {
		t.Fatalf("handled %d of %d with %d requests (reported %d): %v", len(done), len(changed), total, reqs, st)
	}
	if got := len(h.events(0)) - before; got != len(changed) {
		t.Fatalf("%d events for %d payments", got, len(changed))
	}
	// A handful: their GETs, nothing more.
	few := open[1000:1005:1005]
	for _, id := range few {
		if _, err := h.sim.Pay(h.cid, id, ficsim.PaymentSpec{}); err != nil {
			t.Fatal(err)
		}
	}
	h.sim.ResetStats()
	if _, reqs, err = h.p.RefreshMany(context.Background(), h.src, h.cid, few); err != nil || reqs != len(few) {
		t.Fatalf("%d requests for %d documents (%v)", reqs, len(few), err)
	}
	t.Logf("1,000 changed of %d invoices: %d requests", len(open), total)
}

// deadBatches dies before marking a page published.
type deadBatches struct{ rcv.Batches }

func (deadBatches) MarkPublished(context.Context, string) error { return errDied }

// A scan that dies after publishing a page and before confirming it (the
// batch mark and the per-document clears both fail), followed by changes:
// the next look re-publishes the page's transitions with their ids
// (dropped as duplicates) and the new ones follow, once each.
func TestScanDeathBeforeBatchMarkLosesNothing(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 30})
	real := h.p.Batches
	fs := &flakyStore{SnapshotStore: h.snaps}
	h.p.Snapshots, h.p.Batches = fs, deadBatches{real}
	fs.fail.Store(true)
	h.scan()
	open, _, _ := h.sim.InvoiceIDs(h.cid)
	id := open[0]
	ficsimtest.PayInFull(t, h.sim, h.cid, id)
	fs.fail.Store(false)
	h.p.Batches = real
	h.scan()
	got := h.events(id)
	if n := len(got); n < 2 || got[n-1].typ != "invoice.paid" || got[0].typ != "invoice.created" {
		t.Fatalf("stream has %s", typesOf(got))
	}
	docs, _ := h.sim.Documents(h.cid)
	created := 0
	for _, e := range h.events(0) {
		if strings.HasSuffix(e.typ, ".created") {
			created++
		}
	}
	if created != len(docs) {
		t.Fatalf("%d created events for %d documents", created, len(docs))
	}
	// A rescan with every page confirmed writes nothing and publishes nothing.
	before, rev := len(h.events(0)), h.snapsRevision()
	if res := h.scan(); res.Events != 0 || len(h.events(0)) != before || h.snapsRevision() != rev {
		t.Fatalf("rescan: %d events, snapshots rev %d -> %d", res.Events, rev, h.snapsRevision())
	}
}

// heldPages is a source whose pages, once read from FIC, wait for a signal
// before they reach the poller: a slow page, or a replica that pauses.
type heldPages struct {
	rcv.InvoiceSource
	read, release chan struct{}
}

func (s *heldPages) Pages(ctx context.Context, cid int64, kind rcv.Kind) iter.Seq2[rcv.Page, error] {
	return func(yield func(rcv.Page, error) bool) {
		for page, err := range s.InvoiceSource.Pages(ctx, cid, kind) {
			if kind == rcv.KindInvoice && s.read != nil {
				close(s.read)
				<-s.release
				s.read = nil
			}
			if !yield(page, err) {
				return
			}
		}
	}
}

// A scan's page read before a payment and applied after a webhook's GET
// saw the payment is stale: applying it published invoice.reopened (and the
// next look invoice.paid again) for an invoice paid once. The same happens
// across replicas, whichever holds the company.
func TestStalePageDoesNotUndoNewerState(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 10})
	h.scan()
	var id int64
	for _, d := range h.published()["invoice.created"] {
		if d.Document.AmountDue != "0.00" && d.Document.AmountDue != "0" {
			id = d.Document.ID
			break
		}
	}
	if id == 0 {
		t.Fatal("no open invoice")
	}
	before := len(h.events(id))
	src := &heldPages{InvoiceSource: h.src, read: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := h.p.Scan(context.Background(), src, h.cid, nil)
		done <- err
	}()
	<-src.read // the page is read: the invoice is still open in it
	ficsimtest.PayInFull(t, h.sim, h.cid, id)
	h.refresh(id) // the webhook's GET: paid
	close(src.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.scan() // and a later, fresh scan
	if got := typesOf(h.events(id)[before:]); got != "invoice.paid" {
		t.Errorf("events of the invoice after its payment: %s, want invoice.paid", got)
	}
}
