package poller_test

import (
	"context"
	"iter"
	"sync"
	"testing"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// blindSource is FIC after a scope loss or with a bug: a 200 with an empty
// list, 404 for every document, an empty bin.
type blindSource struct{}

func (blindSource) Pages(ctx context.Context, cid int64, kind rcv.Kind) iter.Seq2[rcv.Page, error] {
	return func(yield func(rcv.Page, error) bool) { yield(rcv.Page{Number: 1, LastPage: 1}, nil) }
}
func (blindSource) Invoice(context.Context, int64, int64) (rcv.Invoice, error) {
	return rcv.Invoice{}, rcv.ErrNotFound
}
func (blindSource) Bin(context.Context, int64) ([]int64, error) { return nil, nil }

type alerts struct {
	mu  sync.Mutex
	got []poller.Alert
}

func (a *alerts) add(_ context.Context, x poller.Alert) {
	a.mu.Lock()
	a.got = append(a.got, x)
	a.mu.Unlock()
}
func (a *alerts) kinds() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := map[string]int{}
	for _, x := range a.got {
		m[x.Kind]++
	}
	return m
}

func (h *harness) guard(g poller.DeleteGuard) *alerts {
	h.t.Helper()
	ctx := context.Background()
	holds, err := kvstore.NewHolds(ctx, h.js, kvstore.BucketConfig{})
	if err != nil {
		h.t.Fatal(err)
	}
	owners, err := kvstore.NewOwners(ctx, h.js, kvstore.BucketConfig{})
	if err != nil {
		h.t.Fatal(err)
	}
	a := &alerts{}
	h.p.Holds, h.p.Owners, h.p.DeleteGuard, h.p.OnAlert = holds, owners, g, a.add
	return a
}

func deletedCount(h *harness) int {
	n := 0
	for _, e := range h.events(0) {
		if e.typ == "invoice.deleted" || e.typ == "credit_note.deleted" {
			n++
		}
	}
	return n
}

// A scan that would announce every document deleted (an empty 200 and
// 404s) holds the deletions and raises an alert instead (issue #12,
// item 5); when FIC answers properly again the hold is dropped and nothing
// was deleted.
func TestDeletionGuardHoldsAMassDeletion(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 40})
	al := h.guard(poller.DeleteGuard{Scans: 0})
	h.scan()
	ctx := context.Background()
	res, err := h.p.Scan(ctx, blindSource{}, h.cid, nil)
	if err != nil {
		t.Fatal(err)
	}
	if deletedCount(h) != 0 || res.Deleted != 0 || res.Held == 0 {
		t.Fatalf("blind scan: %d deletions published, result %+v", deletedCount(h), res)
	}
	if al.kinds()["deletions_held"] != 1 {
		t.Fatalf("alerts %v", al.kinds())
	}
	hold, rev, _ := h.p.Holds.Get(ctx, h.cid)
	if rev == 0 || len(hold.IDs) != res.Held {
		t.Fatalf("hold %+v", hold)
	}
	// Still blind: still held (Scans 0 needs an operator).
	if res, _ := h.p.Scan(ctx, blindSource{}, h.cid, nil); res.Deleted != 0 || deletedCount(h) != 0 {
		t.Fatal("a second blind scan deleted without confirmation")
	}
	// FIC is back: the hold is cleared, nothing deleted.
	h.scan()
	if _, rev, _ := h.p.Holds.Get(ctx, h.cid); rev != 0 || deletedCount(h) != 0 {
		t.Fatalf("hold after a good scan: rev %d, %d deletions", rev, deletedCount(h))
	}
}

// Real mass deletions go out once an operator confirms, or once a second
// complete scan agrees (Scans 1); a few deletions are never held.
func TestDeletionGuardReleases(t *testing.T) {
	h := newHarness(t, ficsim.Config{Invoices: 20})
	h.guard(poller.DeleteGuard{Scans: 1})
	h.scan()
	docs, _ := h.sim.Documents(h.cid)
	// One deletion: announced at once.
	if err := h.sim.DeleteDocument(h.cid, docs[0].ID); err != nil {
		t.Fatal(err)
	}
	if res := h.scan(); res.Deleted != 1 || res.Held != 0 {
		t.Fatalf("one deletion: %+v", res)
	}
	// Half the company deleted: held, then released by the next scan.
	for _, d := range docs[1 : len(docs)/2+1] {
		if err := h.sim.DeleteDocument(h.cid, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	first := h.scan()
	if first.Deleted != 0 || first.Held != len(docs)/2 {
		t.Fatalf("mass deletion: %+v", first)
	}
	second := h.scan()
	if second.Deleted != len(docs)/2 || deletedCount(h) != 1+len(docs)/2 {
		t.Fatalf("agreeing scan: %+v, %d deleted events", second, deletedCount(h))
	}
	// Scans 0: an operator's confirmation releases them.
	h.p.DeleteGuard.Scans = 0
	rest, _ := h.sim.Documents(h.cid)
	for _, d := range rest[:len(rest)-1] {
		if err := h.sim.DeleteDocument(h.cid, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	if res := h.scan(); res.Held == 0 || res.Deleted != 0 {
		t.Fatalf("held: %+v", res)
	}
	ctx := context.Background()
	hold, rev, _ := h.p.Holds.Get(ctx, h.cid)
	hold.Confirmed = true
	if _, err := h.p.Holds.Put(ctx, h.cid, hold, rev); err != nil {
		t.Fatal(err)
	}
	if res := h.scan(); res.Deleted != len(rest)-1 {
		t.Fatalf("after confirmation: %+v", res)
	}
}

// foreignSource serves, under its company, one document that belongs to
// another company (a FIC bug seen by users of other integrations).
type foreignSource struct {
	rcv.InvoiceSource
	extra rcv.Invoice
}

func (f foreignSource) Pages(ctx context.Context, cid int64, kind rcv.Kind) iter.Seq2[rcv.Page, error] {
	return func(yield func(rcv.Page, error) bool) {
		for p, err := range f.InvoiceSource.Pages(ctx, cid, kind) {
			if err == nil && kind == rcv.KindInvoice && p.Number == 1 {
				x := f.extra
				x.CompanyID = cid
				p.Invoices = append(p.Invoices, x)
			}
			if !yield(p, err) {
				return
			}
		}
	}
}

// A document whose id is known under another company is refused with an
// alert, not adopted (issue #12, item 5).
func TestDocumentOfAnotherCompanyIsRefused(t *testing.T) {
	h := newHarness(t, ficsim.Config{Companies: 2, Invoices: 10})
	al := h.guard(poller.DeleteGuard{})
	other := h.sim.CompanyIDs()[1]
	ctx := context.Background()
	if _, err := h.p.Scan(ctx, h.src, other, nil); err != nil {
		t.Fatal(err)
	}
	docs, _ := h.sim.Documents(other)
	var theirs rcv.Invoice
	for _, d := range docs {
		if d.Type == "invoice" {
			inv, err := h.src.Invoice(ctx, other, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			theirs = inv
			break
		}
	}
	before := len(h.events(0))
	if _, err := h.p.Scan(ctx, foreignSource{InvoiceSource: h.src, extra: theirs}, h.cid, nil); err != nil {
		t.Fatal(err)
	}
	for _, e := range h.events(0)[before:] {
		if e.doc == theirs.ID {
			t.Fatalf("company %d's document %d was adopted by company %d (%s)", other, theirs.ID, h.cid, e.typ)
		}
	}
	if al.kinds()["foreign_document"] != 1 {
		t.Fatalf("alerts %v", al.kinds())
	}
	if _, rev, _ := h.snaps.Get(ctx, h.cid, theirs.ID); rev != 0 {
		t.Fatal("a snapshot was stored for the foreign document")
	}
}
