// Package storetest holds the conformance suites of the store interfaces
// (receivables and dunning ports): what every implementation must do, in
// one place, run against the JetStream KV stores (kvstore) and the
// in-memory ones (memstore) alike. A store that passes its suite can stand
// in for another in the use cases' tests.
package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/dunning"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

func conflict(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, rcv.ErrConflict) {
		t.Fatalf("%s: %v, want ErrConflict", what, err)
	}
}

func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// SnapshotStore checks a receivables.SnapshotStore; open returns an empty one.
func SnapshotStore(t *testing.T, open func(t *testing.T) rcv.SnapshotStore) {
	ctx := context.Background()
	t.Run("get of nothing", func(t *testing.T) {
		s := open(t)
		snap, rev, err := s.Get(ctx, 1, 10)
		ok(t, "get", err)
		if rev != 0 || snap.Deleted {
			t.Fatalf("got %+v at %d, want nothing", snap, rev)
		}
	})
	t.Run("compare and set", func(t *testing.T) {
		s := open(t)
		r1, err := s.Put(ctx, 1, 10, rcv.Snapshot{Seq: 1}, 0)
		ok(t, "create", err)
		_, err = s.Put(ctx, 1, 10, rcv.Snapshot{Seq: 9}, 0)
		conflict(t, "second create", err)
		r2, err := s.Put(ctx, 1, 10, rcv.Snapshot{Seq: 2}, r1)
		ok(t, "update", err)
		if r2 <= r1 {
			t.Fatalf("revision went from %d to %d", r1, r2)
		}
		_, err = s.Put(ctx, 1, 10, rcv.Snapshot{Seq: 9}, r1)
		conflict(t, "stale update", err)
		snap, rev, err := s.Get(ctx, 1, 10)
		ok(t, "get", err)
		if rev != r2 || snap.Seq != 2 {
			t.Fatalf("got seq %d at %d, want 2 at %d", snap.Seq, rev, r2)
		}
	})
	t.Run("tombstone", func(t *testing.T) {
		s := open(t)
		r1, err := s.Put(ctx, 1, 10, rcv.Snapshot{Seq: 3}, 0)
		ok(t, "create", err)
		conflict(t, "stale delete", s.Delete(ctx, 1, 10, rcv.Snapshot{Seq: 4}, r1+100))
		ok(t, "delete", s.Delete(ctx, 1, 10, rcv.Snapshot{Seq: 4}, r1))
		snap, rev, err := s.Get(ctx, 1, 10)
		ok(t, "get tombstone", err)
		if rev == 0 || !snap.Deleted || snap.Seq != 4 {
			t.Fatalf("tombstone: %+v at %d, want deleted with seq 4", snap, rev)
		}
		ids, err := s.IDs(ctx, 1)
		ok(t, "ids", err)
		if len(ids) != 0 {
			t.Fatalf("a tombstone is listed: %v", ids)
		}
		_, err = s.Put(ctx, 1, 10, rcv.Snapshot{Seq: 5}, 0)
		conflict(t, "create over a tombstone", err)
		_, err = s.Put(ctx, 1, 10, rcv.Snapshot{Seq: 5}, rev)
		ok(t, "revive at the tombstone's revision", err)
		if ids, _ := s.IDs(ctx, 1); !slices.Equal(ids, []int64{10}) {
			t.Fatalf("revived document not listed: %v", ids)
		}
	})
	t.Run("ids per company", func(t *testing.T) {
		s := open(t)
		for _, w := range [][2]int64{{1, 30}, {1, 10}, {2, 20}, {1, 20}} {
			_, err := s.Put(ctx, w[0], w[1], rcv.Snapshot{}, 0)
			ok(t, "put", err)
		}
		ids, err := s.IDs(ctx, 1)
		ok(t, "ids", err)
		slices.Sort(ids)
		if !slices.Equal(ids, []int64{10, 20, 30}) {
			t.Fatalf("company 1: %v", ids)
		}
		if ids, _ := s.IDs(ctx, 3); len(ids) != 0 {
			t.Fatalf("company 3: %v", ids)
		}
	})
	t.Run("put all", func(t *testing.T) {
		s := open(t)
		r, err := s.Put(ctx, 1, 10, rcv.Snapshot{Seq: 1}, 0)
		ok(t, "put", err)
		writes := []rcv.SnapshotWrite{
			{CompanyID: 1, ID: 10, Snapshot: rcv.Snapshot{Seq: 2}, Rev: r},      // update
			{CompanyID: 1, ID: 11, Snapshot: rcv.Snapshot{Seq: 1}},              // create
			{CompanyID: 1, ID: 10, Snapshot: rcv.Snapshot{Seq: 9}, Rev: r},      // stale: the first write moved it
			{CompanyID: 1, ID: 12, Snapshot: rcv.Snapshot{Seq: 1}, Rev: r + 50}, // never existed at that revision
		}
		revs, errs := s.PutAll(ctx, writes)
		if len(revs) != len(writes) || len(errs) != len(writes) {
			t.Fatalf("%d revisions and %d errors for %d writes", len(revs), len(errs), len(writes))
		}
		ok(t, "update", errs[0])
		ok(t, "create", errs[1])
		conflict(t, "stale write in a batch", errs[2])
		conflict(t, "write at a revision never held", errs[3])
		for k := range 2 {
			snap, rev, err := s.Get(ctx, 1, writes[k].ID)
			ok(t, "get", err)
			if rev != revs[k] || snap.Seq != writes[k].Snapshot.Seq {
				t.Fatalf("write %d: stored seq %d at %d, want %d at %d", k, snap.Seq, rev, writes[k].Snapshot.Seq, revs[k])
			}
		}
		if revs, errs := s.PutAll(ctx, nil); len(revs) != 0 || len(errs) != 0 {
			t.Fatal("an empty batch returned results")
		}
	})
}

// HoldStore checks a receivables.HoldStore; open returns an empty one.
func HoldStore(t *testing.T, open func(t *testing.T) rcv.HoldStore) {
	ctx := context.Background()
	s := open(t)
	if h, rev, err := s.Get(ctx, 1); err != nil || rev != 0 || len(h.IDs) != 0 {
		t.Fatalf("get of nothing: %+v %d %v", h, rev, err)
	}
	held := rcv.DeletionHold{IDs: []int64{3, 4}, Stored: 10, HeldAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	r1, err := s.Put(ctx, 1, held, 0)
	ok(t, "create", err)
	_, err = s.Put(ctx, 1, held, 0)
	conflict(t, "second create", err)
	held.Agreeing = 1
	r2, err := s.Put(ctx, 1, held, r1)
	ok(t, "update", err)
	_, err = s.Put(ctx, 1, held, r1)
	conflict(t, "stale update", err)
	_, err = s.Put(ctx, 2, rcv.DeletionHold{IDs: []int64{9}}, 0)
	ok(t, "other company", err)
	all, err := s.List(ctx)
	ok(t, "list", err)
	if len(all) != 2 || all[1].Agreeing != 1 || !slices.Equal(all[1].IDs, []int64{3, 4}) || !all[1].HeldAt.Equal(held.HeldAt) {
		t.Fatalf("list: %+v", all)
	}
	conflict(t, "stale delete", s.Delete(ctx, 1, r1))
	ok(t, "delete", s.Delete(ctx, 1, r2))
	if _, rev, _ := s.Get(ctx, 1); rev != 0 {
		t.Fatal("a deleted hold is still there")
	}
	if all, _ := s.List(ctx); len(all) != 1 {
		t.Fatalf("list after delete: %+v", all)
	}
	_, err = s.Put(ctx, 1, held, 0)
	ok(t, "create after delete", err)
}

// Owners checks a receivables.Owners; open returns an empty one.
func Owners(t *testing.T, open func(t *testing.T) rcv.Owners) {
	ctx := context.Background()
	s := open(t)
	got, err := s.Claim(ctx, 1, []int64{10, 11})
	ok(t, "claim", err)
	if !slices.Equal(got, []int64{1, 1}) {
		t.Fatalf("first claim: %v", got)
	}
	got, err = s.Claim(ctx, 2, []int64{12, 11, 10})
	ok(t, "claim", err)
	if !slices.Equal(got, []int64{2, 1, 1}) {
		t.Fatalf("second claim: %v, want the first claimer kept", got)
	}
	if got, _ := s.Claim(ctx, 1, nil); len(got) != 0 {
		t.Fatalf("empty claim: %v", got)
	}
}

// Batches checks a receivables.Batches; open returns an empty one.
func Batches(t *testing.T, open func(t *testing.T) rcv.Batches) {
	ctx := context.Background()
	s := open(t)
	if s.Retention() < 24*time.Hour {
		t.Fatalf("retention %v: marks must outlive any outage the poller recovers from", s.Retention())
	}
	if p, err := s.Published(ctx, "b1"); err != nil || p {
		t.Fatalf("unmarked batch: %v %v", p, err)
	}
	ok(t, "mark", s.MarkPublished(ctx, "b1"))
	ok(t, "mark again", s.MarkPublished(ctx, "b1"))
	if p, err := s.Published(ctx, "b1"); err != nil || !p {
		t.Fatalf("marked batch: %v %v", p, err)
	}
	if p, _ := s.Published(ctx, "b2"); p {
		t.Fatal("another batch is marked")
	}
}

// CaseStore checks a dunning.CaseStore; open returns an empty one.
func CaseStore(t *testing.T, open func(t *testing.T) dunning.CaseStore) {
	ctx := context.Background()
	s := open(t)
	if _, rev, err := s.Get(ctx, 1, 10); err != nil || rev != 0 {
		t.Fatalf("get of nothing: %d %v", rev, err)
	}
	c := dunning.Case{CompanyID: 1, InvoiceID: 10, State: dunning.Active, Opened: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	r1, err := s.Put(ctx, c, 0)
	ok(t, "create", err)
	_, err = s.Put(ctx, c, 0)
	conflict(t, "second create", err)
	c.Stage = 1
	r2, err := s.Put(ctx, c, r1)
	ok(t, "update", err)
	_, err = s.Put(ctx, c, r1)
	conflict(t, "stale update", err)
	got, rev, err := s.Get(ctx, 1, 10)
	ok(t, "get", err)
	if rev != r2 || got.Stage != 1 || got.State != dunning.Active || !got.Opened.Equal(c.Opened) {
		t.Fatalf("got %+v at %d", got, rev)
	}
	_, err = s.Put(ctx, dunning.Case{CompanyID: 1, InvoiceID: 11}, 0)
	ok(t, "put", err)
	_, err = s.Put(ctx, dunning.Case{CompanyID: 2, InvoiceID: 20}, 0)
	ok(t, "put", err)
	ids := func(cs []dunning.Case) []int64 {
		var out []int64
		for _, c := range cs {
			out = append(out, c.InvoiceID)
		}
		slices.Sort(out)
		return out
	}
	one, err := s.List(ctx, 1)
	ok(t, "list", err)
	if !slices.Equal(ids(one), []int64{10, 11}) {
		t.Fatalf("company 1: %v", ids(one))
	}
	all, err := s.List(ctx, 0)
	ok(t, "list all", err)
	if !slices.Equal(ids(all), []int64{10, 11, 20}) {
		t.Fatalf("all companies: %v", ids(all))
	}
}

// ClientIndex checks a dunning.ClientIndex; open returns an empty one.
func ClientIndex(t *testing.T, open func(t *testing.T) dunning.ClientIndex) {
	ctx := context.Background()
	s := open(t)
	if _, rev, err := s.Get(ctx, 1, "c1"); err != nil || rev != 0 {
		t.Fatalf("get of nothing: %d %v", rev, err)
	}
	r1, err := s.Put(ctx, 1, "c1", dunning.ClientRecord{Invoices: []int64{10}}, 0)
	ok(t, "create", err)
	_, err = s.Put(ctx, 1, "c1", dunning.ClientRecord{}, 0)
	conflict(t, "second create", err)
	r2, err := s.Put(ctx, 1, "c1", dunning.ClientRecord{Invoices: []int64{10, 11}}, r1)
	ok(t, "update", err)
	_, err = s.Put(ctx, 1, "c1", dunning.ClientRecord{}, r1)
	conflict(t, "stale update", err)
	got, rev, err := s.Get(ctx, 1, "c1")
	ok(t, "get", err)
	if rev != r2 || !slices.Equal(got.Invoices, []int64{10, 11}) {
		t.Fatalf("got %+v at %d", got, rev)
	}
	if _, rev, _ := s.Get(ctx, 2, "c1"); rev != 0 {
		t.Fatal("clients are not kept per company")
	}
}

// Outbox checks a dunning.Outbox; open returns an empty one.
func Outbox(t *testing.T, open func(t *testing.T) dunning.Outbox) {
	ctx := context.Background()
	s := open(t)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	pending := dunning.OutboxRecord{State: dunning.OutboxPending, MessageID: "<m1>", At: at}
	if _, err := s.Begin(ctx, "k", pending); err != nil {
		t.Fatalf("begin: %v", err)
	}
	prev, err := s.Begin(ctx, "k", pending)
	conflict(t, "begin of a pending delivery", err)
	if prev.State != dunning.OutboxPending || prev.MessageID != "<m1>" {
		t.Fatalf("existing record: %+v", prev)
	}
	ok(t, "complete retry", s.Complete(ctx, "k", dunning.OutboxRecord{State: dunning.OutboxRetry, At: at, Error: "421"}))
	if _, err := s.Begin(ctx, "k", pending); err != nil {
		t.Fatalf("begin after a retry: %v", err)
	}
	ok(t, "complete sent", s.Complete(ctx, "k", dunning.OutboxRecord{State: dunning.OutboxSent, MessageID: "<m1>", At: at}))
	prev, err = s.Begin(ctx, "k", pending)
	conflict(t, "begin of a sent delivery", err)
	if prev.State != dunning.OutboxSent {
		t.Fatalf("existing record: %+v", prev)
	}
	if _, err := s.Begin(ctx, "other", pending); err != nil {
		t.Fatalf("begin of another key: %v", err)
	}
}

// ModeStore checks a dunning.ModeStore; open returns an empty one.
func ModeStore(t *testing.T, open func(t *testing.T) dunning.ModeStore) {
	ctx := context.Background()
	s := open(t)
	if r, err := s.Get(ctx, 1); err != nil || r.Mode != "" {
		t.Fatalf("get of nothing: %+v %v", r, err)
	}
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	ok(t, "put", s.Put(ctx, 1, dunning.ModeRecord{Mode: "shadow", Operator: "maria", At: at}))
	ok(t, "put again", s.Put(ctx, 1, dunning.ModeRecord{Mode: "live", Operator: "luca", At: at}))
	r, err := s.Get(ctx, 1)
	ok(t, "get", err)
	if r.Mode != "live" || r.Operator != "luca" || !r.At.Equal(at) {
		t.Fatalf("got %+v", r)
	}
	if r, _ := s.Get(ctx, 2); r.Mode != "" {
		t.Fatal("modes are not kept per company")
	}
}
