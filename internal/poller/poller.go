package poller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Poller applies source documents to the snapshot store and publishes the
// transitions. It is safe for concurrent use.
type Poller struct {
	Snapshots rcv.SnapshotStore
	Publisher rcv.Publisher
	Timers    rcv.Timers // nil: no durable timers (time events only on scans)
	Rules     Rules
	Now       func() time.Time
	Log       *slog.Logger
	// Concurrency is how many documents of a page are applied at once
	// (default 16). Each document keeps its own publish → snapshot order.
	Concurrency int
	// OpenOnly says scans list only invoices with an open installment (the
	// source filters them). A stored invoice that was open and is missing
	// is confirmed with one GET — that is how a payment is detected without
	// webhooks — while fully paid ones are expected to be absent and cost
	// nothing. (A deletion of an already paid invoice is then seen only via
	// webhooks.)
	OpenOnly bool
	// Holds and DeleteGuard hold a scan's mass deletions for a person
	// (nil Holds: no guard).
	Holds       rcv.HoldStore
	DeleteGuard DeleteGuard
	// Owners, if set, refuses a document whose id is already known under
	// another company (FIC's ids are unique across companies).
	Owners rcv.Owners
	// OnAlert is told what the sanity checks hold back (metrics, ops).
	OnAlert func(context.Context, Alert)
	// Batches, if set, lets a page confirm its published transitions with
	// one record instead of a second snapshot write per document.
	Batches rcv.Batches

	published sync.Map // batch ids known published (bounded: reset past publishedCap)
	nPub      atomic.Int64
}

const publishedCap = 100000

// settled reports whether the pending transitions of s are known to be
// published: their batch is marked (or its mark has expired, which only a
// published batch can outlive: an unpublished one is re-published by the
// first look, long before).
func (p *Poller) settled(ctx context.Context, s *rcv.Snapshot) (bool, error) {
	if s.Batch == "" || p.Batches == nil {
		return false, nil
	}
	if _, ok := p.published.Load(s.Batch); ok {
		return true, nil
	}
	ok, err := p.Batches.Published(ctx, s.Batch)
	if err != nil {
		return false, err
	}
	if !ok && !s.DecidedAt.IsZero() && p.now().Sub(s.DecidedAt) > p.Batches.Retention()-24*time.Hour {
		ok = true
	}
	if ok {
		p.remember(s.Batch)
	}
	return ok, nil
}

func (p *Poller) remember(batch string) {
	if p.nPub.Add(1) > publishedCap {
		p.published.Clear()
		p.nPub.Store(0)
	}
	p.published.Store(batch, struct{}{})
}

func newBatchID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (p *Poller) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Poller) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.New(slog.DiscardHandler)
}

const maxCASRetries = 8

// Apply brings one document up to date: curr is what the source returns now
// (nil: confirmed deleted). It returns the number of events published.
func (p *Poller) Apply(ctx context.Context, cid, id int64, curr *rcv.Invoice) (int, error) {
	return p.apply(ctx, cid, id, curr, time.Time{}, false)
}

// ApplyRead is Apply for a state read from the source by a request sent
// at readAt: if the stored snapshot was read later, curr is stale and is
// not applied (see rcv.Snapshot.ReadAt).
func (p *Poller) ApplyRead(ctx context.Context, cid, id int64, curr *rcv.Invoice, readAt time.Time) (int, error) {
	return p.apply(ctx, cid, id, curr, readAt, false)
}

// apply retries applyOnce on lost compare-and-set. After a lost write the
// timer is set again even if the stored snapshot says it is right: the
// losing attempt may have replaced it. forceTimer asks for that from the
// first attempt (a page whose timer batch went out before its write lost).
func (p *Poller) apply(ctx context.Context, cid, id int64, curr *rcv.Invoice, readAt time.Time, forceTimer bool) (int, error) {
	for attempt := 0; attempt < maxCASRetries; attempt++ {
		n, err := p.applyOnce(ctx, cid, id, curr, readAt, forceTimer || attempt > 0)
		if !errors.Is(err, rcv.ErrConflict) {
			return n, err
		}
	}
	return 0, fmt.Errorf("poller: document %d/%d: %w after %d attempts", cid, id, rcv.ErrConflict, maxCASRetries)
}

// applyOnce is the commit protocol for one document:
//
//  1. read the snapshot; if it holds pending transitions (an earlier
//     attempt saved them and may have died before publishing), publish
//     them again — same ids, so JetStream drops what was already stored;
//  2. diff, and set the document's timer to its next instant;
//  3. save the new snapshot with its transitions as pending
//     (compare-and-set on the revision read in 1);
//  4. publish the transitions;
//  5. save the snapshot without them (compare-and-set on the revision of 3;
//     losing it means another writer read 3 and published them itself).
//
// Whatever fails, no transition is lost (it is saved before it is
// published, and whoever reads it publishes it) and none is doubled (every
// re-publication carries the id of the first). A document with no
// transition (only its timer or notified keys changed) is saved once.
func (p *Poller) applyOnce(ctx context.Context, cid, id int64, curr *rcv.Invoice, readAt time.Time, forceTimer bool) (int, error) {
	prev, rev, err := p.Snapshots.Get(ctx, cid, id)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		prev = rcv.Snapshot{} // none stored
		if curr != nil {
			if ok, err := p.owned(ctx, cid, []rcv.Invoice{*curr}); err != nil || !ok[0] {
				return 0, err
			}
		}
	}
	recovered, err := p.recover(ctx, cid, id, &prev)
	if err != nil {
		return 0, err
	}
	changes, next, write := p.plan(&prev, rev, curr, readAt, p.now())
	if !write && !recovered {
		return 0, nil
	}
	if err := p.schedule(ctx, cid, id, &prev, &next, forceTimer); err != nil {
		return 0, err
	}
	if len(changes) == 0 {
		return 0, p.save(ctx, cid, id, next, rev)
	}
	intent := next
	intent.Pending, intent.DecidedAt = rcv.PendingOf(changes), p.now()
	irev, err := p.Snapshots.Put(ctx, cid, id, intent, rev)
	if err != nil {
		return 0, err
	}
	if err := p.Publisher.Publish(ctx, changes); err != nil {
		// Saved as pending: the next look at the document publishes them.
		return 0, fmt.Errorf("poller: publish %d/%d: %w", cid, id, err)
	}
	if err := p.save(ctx, cid, id, next, irev); err != nil && !errors.Is(err, rcv.ErrConflict) {
		// Published, and their state is saved with them as pending: a
		// later look re-publishes them with the same ids. Not an error for
		// the caller.
		p.log().Warn("transitions published; clearing them from the snapshot failed (a later look re-publishes them, deduplicated)",
			"company_id", cid, "document_id", id, "error", err)
	}
	return len(changes), nil
}

// unsettled clears the pending transitions of a stored snapshot from prev
// (the next write of the document saves it without them) and returns those
// that must be published again: none when their batch is known published.
func (p *Poller) unsettled(ctx context.Context, prev *rcv.Snapshot) ([]rcv.Change, error) {
	if len(prev.Pending) == 0 {
		return nil, nil
	}
	ok, err := p.settled(ctx, prev)
	if err != nil {
		return nil, err
	}
	var again []rcv.Change
	if !ok {
		again = prev.PendingChanges()
	}
	prev.Pending, prev.Batch = nil, ""
	return again, nil
}

// recover publishes again what unsettled returns for one document and
// reports whether there was any.
func (p *Poller) recover(ctx context.Context, cid, id int64, prev *rcv.Snapshot) (bool, error) {
	again, err := p.unsettled(ctx, prev)
	if err != nil || len(again) == 0 {
		return false, err
	}
	if err := p.Publisher.Publish(ctx, again); err != nil {
		return false, fmt.Errorf("poller: re-publish pending transitions of %d/%d: %w", cid, id, err)
	}
	p.log().Info("pending transitions re-published", "company_id", cid, "document_id", id, "count", len(again))
	return true, nil
}

// save writes a snapshot without pending transitions: a tombstone for a
// deleted document, else a put.
func (p *Poller) save(ctx context.Context, cid, id int64, next rcv.Snapshot, rev uint64) error {
	next.Pending, next.Batch, next.DecidedAt = nil, "", time.Time{}
	if next.Deleted {
		return p.Snapshots.Delete(ctx, cid, id, next, rev)
	}
	_, err := p.Snapshots.Put(ctx, cid, id, next, rev)
	return err
}

// plan diffs a document against its stored snapshot (rev 0: none; prev is
// then the zero Snapshot) at now. It returns the changes to publish, the
// snapshot to store with its timer instant, and whether anything needs
// doing: nothing when neither the document nor its snapshot changed, or
// when a document never stored is confirmed deleted.
func (p *Poller) plan(prev *rcv.Snapshot, rev uint64, curr *rcv.Invoice, readAt, now time.Time) ([]rcv.Change, rcv.Snapshot, bool) {
	var prevp *rcv.Snapshot
	if rev > 0 {
		prevp = prev
		if Stale(prev, readAt) {
			return nil, *prev, false
		}
	}
	changes, next := Diff(prevp, curr, now, p.Rules)
	next.ReadAt = prev.ReadAt
	if readAt.After(next.ReadAt) {
		next.ReadAt = readAt
	}
	if curr == nil && rev == 0 {
		return nil, next, false
	}
	if p.Timers != nil {
		next.TimerAt = NextInstant(&next, now, p.Rules)
	}
	if len(changes) == 0 && rev > 0 && Equal(prev, &next) {
		return nil, next, false
	}
	return changes, next, true
}

// Stale reports whether a state read by a request sent at readAt is older
// than the stored snapshot's (zero readAt: unknown, never stale).
func Stale(stored *rcv.Snapshot, readAt time.Time) bool {
	return !readAt.IsZero() && stored.ReadAt.After(readAt)
}

// timerMove returns the instant the document's durable timer must be set
// to (zero: cancelled) and whether that differs from the one already set
// (prev is the zero Snapshot when none was stored).
func timerMove(prev, next *rcv.Snapshot) (time.Time, bool) {
	at := next.TimerAt
	if next.Deleted {
		at = time.Time{}
	}
	return at, !prev.TimerAt.Equal(at)
}

// schedule keeps the document's durable timer at its next instant. It runs
// before the snapshot is saved, so a crash cannot leave a saved snapshot
// without its timer; re-scheduling the same instant is harmless. force sets
// it even when the stored snapshot says it is already right.
func (p *Poller) schedule(ctx context.Context, cid, id int64, prev, next *rcv.Snapshot, force bool) error {
	if p.Timers == nil {
		return nil
	}
	at, moved := timerMove(prev, next)
	if !moved && !(force && !at.IsZero()) {
		return nil // the timer already set is right (or none was ever set)
	}
	if err := p.Timers.Schedule(ctx, cid, id, at); err != nil {
		return fmt.Errorf("poller: schedule timer %d/%d: %w", cid, id, err)
	}
	return nil
}

// Fire handles a fired timer: it re-diffs the stored snapshot against itself
// at the current time, which publishes the due time-based events. It makes
// no source request.
func (p *Poller) Fire(ctx context.Context, cid, id int64) (int, error) {
	for attempt := 0; attempt < maxCASRetries; attempt++ {
		snap, rev, err := p.Snapshots.Get(ctx, cid, id)
		if err != nil {
			return 0, err
		}
		if rev == 0 || snap.Deleted {
			return 0, nil // paid and gone, or deleted: the timer is stale
		}
		inv := snap.Invoice
		n, err := p.applyOnce(ctx, cid, id, &inv, time.Time{}, true)
		if !errors.Is(err, rcv.ErrConflict) {
			return n, err
		}
	}
	return 0, fmt.Errorf("poller: fire %d/%d: %w", cid, id, rcv.ErrConflict)
}

// Refresh fetches one document (a webhook told us it changed) and applies
// it. A document the source no longer has is announced as deleted.
func (p *Poller) Refresh(ctx context.Context, src rcv.InvoiceSource, cid, id int64) (int, error) {
	at := time.Now()
	inv, err := src.Invoice(ctx, cid, id)
	if errors.Is(err, rcv.ErrNotFound) {
		return p.ApplyRead(ctx, cid, id, nil, at)
	}
	if err != nil {
		return 0, err
	}
	return p.ApplyRead(ctx, cid, id, &inv, at)
}

// ScanResult reports one reconciliation scan.
type ScanResult struct {
	CompanyID int64
	Pages     int
	Documents int
	Events    int
	Invalid   int // documents that could not be read
	Missing   int // stored documents absent from the scan
	Deleted   int // of which confirmed deleted and announced
	Held      int // of which confirmed deleted and held by the deletion guard
	Requests  int // source requests made (pages + confirmations)
	Complete  bool
	Duration  time.Duration
}

// Progress is called after each page of a scan.
type Progress func(cid int64, kind rcv.Kind, page, lastPage int)

// Scan reconciles a company: every invoice and credit note is applied, and,
// only if the scan was complete, documents that had a snapshot when the scan
// started and that it did not see are confirmed (bin, then a single GET)
// and announced as deleted. Memory stays O(page) documents plus two int64
// per document id (stored and seen).
func (p *Poller) Scan(ctx context.Context, src rcv.InvoiceSource, cid int64, progress Progress) (ScanResult, error) {
	start := time.Now()
	res := ScanResult{CompanyID: cid, Complete: true}
	stored, err := p.Snapshots.IDs(ctx, cid)
	if err != nil {
		res.Complete, res.Duration = false, time.Since(start)
		return res, err
	}
	slices.Sort(stored)
	var seen []int64
	for _, kind := range []rcv.Kind{rcv.KindInvoice, rcv.KindCreditNote} {
		for page, err := range src.Pages(ctx, cid, kind) {
			res.Requests++
			if err != nil {
				res.Complete = false
				res.Duration = time.Since(start)
				return res, fmt.Errorf("poller: scan %d %s page %d: %w", cid, kind, page.Number, err)
			}
			res.Pages++
			for _, e := range page.Errors {
				res.Complete = false
				res.Invalid++
				p.log().Warn("document skipped: cannot read it", "company_id", cid, "kind", kind, "page", page.Number, "error", e)
			}
			for i := range page.Invoices {
				seen = append(seen, page.Invoices[i].ID)
			}
			n, err := p.applyPage(ctx, cid, page.Invoices, stored, page.ReadAt)
			res.Events += n
			if err != nil {
				res.Duration = time.Since(start)
				return res, err
			}
			res.Documents += len(page.Invoices)
			if progress != nil {
				progress(cid, kind, page.Number, page.LastPage)
			}
		}
	}
	if res.Complete {
		if err := p.confirmMissing(ctx, src, cid, stored, seen, &res); err != nil {
			res.Duration = time.Since(start)
			return res, err
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// applyPage applies a page's documents as one pipeline and returns the
// events published; an error stops the page. stored (sorted) are the ids
// that had a snapshot when the scan started.
//
// It is applyOnce's commit protocol with each step batched over the page —
// re-publish what earlier attempts left pending, set timers, save the
// snapshots with their transitions pending, publish, save them cleared —
// each batch awaited before the next, so per document the order of
// applyOnce holds. Snapshots are read concurrently, except those of
// documents that had none when the scan started: their write is a create,
// which loses compare-and-set if anything was written since (a webhook
// refresh, or a tombstone of a document restored from the bin). A document
// whose first write loses compare-and-set is applied again on its own.
// Batching turns the round trips per document into round trips per page,
// which is what bounds an initial sync.
func (p *Poller) applyPage(ctx context.Context, cid int64, invs []rcv.Invoice, stored []int64, readAt time.Time) (int, error) {
	type doc struct {
		prev    rcv.Snapshot
		rev     uint64
		changes []rcv.Change
		next    rcv.Snapshot
		// recovered: the stored snapshot had pending transitions (they are
		// re-published first).
		recovered bool
	}
	docs := make([]doc, len(invs))
	if err := p.readSnapshots(ctx, cid, invs, stored, func(i int, s rcv.Snapshot, rev uint64) { docs[i].prev, docs[i].rev = s, rev }); err != nil {
		return 0, err
	}
	var fresh []rcv.Invoice // documents never seen under this company
	var freshIdx []int
	for i := range docs {
		if docs[i].rev == 0 {
			fresh, freshIdx = append(fresh, invs[i]), append(freshIdx, i)
		}
	}
	ok, err := p.owned(ctx, cid, fresh)
	if err != nil {
		return 0, err
	}
	skip := make([]bool, len(invs))
	for k, i := range freshIdx {
		skip[i] = !ok[k]
	}
	var recovered []rcv.Change
	for i := range docs {
		d := &docs[i]
		again, err := p.unsettled(ctx, &d.prev)
		if err != nil {
			return 0, err
		}
		recovered, d.recovered = append(recovered, again...), len(again) > 0
	}
	if err := p.Publisher.Publish(ctx, recovered); err != nil {
		return 0, fmt.Errorf("poller: re-publish pending transitions of company %d: %w", cid, err)
	}
	now := p.now()
	batch := ""
	if p.Batches != nil {
		batch = newBatchID()
	}
	var (
		changes []rcv.Change
		timers  []rcv.Timer
		writes  []rcv.SnapshotWrite
		which   []int // writes[k] is the snapshot of invs[which[k]]
	)
	for i := range invs {
		if skip[i] {
			continue
		}
		d := &docs[i]
		ch, next, write := p.plan(&d.prev, d.rev, &invs[i], readAt, now)
		if !write && !d.recovered { // a recovered snapshot is written again without its pending transitions
			continue
		}
		d.changes, d.next = ch, next
		if at, moved := timerMove(&d.prev, &next); p.Timers != nil && moved {
			timers = append(timers, rcv.Timer{CompanyID: cid, ID: invs[i].ID, At: at})
		}
		if next.Pending = rcv.PendingOf(ch); len(ch) > 0 {
			next.Batch, next.DecidedAt = batch, now
		}
		writes = append(writes, rcv.SnapshotWrite{CompanyID: cid, ID: invs[i].ID, Snapshot: next, Rev: d.rev})
		which = append(which, i)
	}
	if len(timers) > 0 {
		if err := p.Timers.ScheduleAll(ctx, timers); err != nil {
			return 0, fmt.Errorf("poller: schedule timers of company %d: %w", cid, err)
		}
	}
	revs, errs := p.Snapshots.PutAll(ctx, writes)
	var (
		retry  []int
		clears []rcv.SnapshotWrite
	)
	for k, err := range errs {
		i := which[k]
		switch {
		case err == nil:
			if len(docs[i].changes) > 0 {
				changes = append(changes, docs[i].changes...)
				clears = append(clears, rcv.SnapshotWrite{CompanyID: cid, ID: invs[i].ID, Snapshot: docs[i].next, Rev: revs[k]})
			}
		case errors.Is(err, rcv.ErrConflict):
			retry = append(retry, i)
		default:
			return 0, err
		}
	}
	if err := p.Publisher.Publish(ctx, changes); err != nil {
		return 0, fmt.Errorf("poller: publish page of company %d: %w", cid, err)
	}
	events := len(changes)
	if batch != "" && len(clears) > 0 {
		// One record confirms the page's transitions; the snapshots keep
		// them as pending, known published through their batch.
		if err := p.Batches.MarkPublished(ctx, batch); err == nil {
			p.remember(batch)
			clears = nil
		} else {
			p.log().Warn("marking a page's transitions published failed; clearing them document by document", "company_id", cid, "error", err)
		}
	}
	_, errs = p.Snapshots.PutAll(ctx, clears)
	for k, err := range errs {
		if err != nil && !errors.Is(err, rcv.ErrConflict) {
			p.log().Warn("transitions published; clearing them from the snapshot failed (a later look re-publishes them, deduplicated)",
				"company_id", cid, "document_id", clears[k].ID, "error", err)
		}
	}
	for _, i := range retry {
		n, err := p.apply(ctx, cid, invs[i].ID, &invs[i], readAt, true)
		if err != nil {
			return events, err
		}
		events += n
	}
	return events, nil
}

// owned checks that documents never seen under company cid are not known
// under another one (see Owners) and reports, per document, whether it may
// be applied; a foreign one raises an alert and is skipped.
func (p *Poller) owned(ctx context.Context, cid int64, invs []rcv.Invoice) ([]bool, error) {
	ok := make([]bool, len(invs))
	if p.Owners == nil || len(invs) == 0 {
		for i := range ok {
			ok[i] = true
		}
		return ok, nil
	}
	ids := make([]int64, len(invs))
	for i := range invs {
		ids[i] = invs[i].ID
	}
	owners, err := p.Owners.Claim(ctx, cid, ids)
	if err != nil {
		return nil, fmt.Errorf("poller: owners of company %d's documents: %w", cid, err)
	}
	for i, o := range owners {
		ok[i] = o == cid
		if !ok[i] {
			p.alert(ctx, Alert{Kind: "foreign_document", CompanyID: cid, Documents: []int64{ids[i]},
				Detail: fmt.Sprintf("FIC served document %d under company %d, but it belongs to company %d: refused", ids[i], cid, o)})
		}
	}
	return ok, nil
}

// readSnapshots reads the stored snapshots of a page's documents with
// bounded concurrency, skipping the ids not in stored, and hands each to
// got (called concurrently, once per index read).
func (p *Poller) readSnapshots(ctx context.Context, cid int64, invs []rcv.Invoice, stored []int64, got func(int, rcv.Snapshot, uint64)) error {
	workers := p.Concurrency
	if workers <= 0 {
		workers = 16
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range invs {
		if _, known := slices.BinarySearch(stored, invs[i].ID); !known {
			continue
		}
		if gctx.Err() != nil {
			break // a read failed: stop starting others
		}
		g.Go(func() error {
			snap, rev, err := p.Snapshots.Get(gctx, cid, invs[i].ID)
			if err != nil {
				return err
			}
			got(i, snap, rev)
			return nil
		})
	}
	return g.Wait()
}

func (p *Poller) confirmMissing(ctx context.Context, src rcv.InvoiceSource, cid int64, stored, seen []int64, res *ScanResult) error {
	slices.Sort(seen)
	var missing []int64
	for _, id := range stored {
		if _, ok := slices.BinarySearch(seen, id); !ok {
			missing = append(missing, id)
		}
	}
	if p.OpenOnly {
		kept := missing[:0]
		for _, id := range missing {
			snap, rev, err := p.Snapshots.Get(ctx, cid, id)
			if err != nil {
				return err
			}
			if rev > 0 && snap.Invoice.Kind == rcv.KindInvoice && snap.Invoice.FullyPaid() {
				continue // absent by design: the scan lists open invoices only
			}
			kept = append(kept, id)
		}
		missing = kept
	}
	res.Missing = len(missing)
	if len(missing) == 0 {
		_, err := p.guardDeletions(ctx, cid, nil, len(stored)) // clears a hold whose documents came back
		return err
	}
	binAt := time.Now()
	binIDs, err := src.Bin(ctx, cid)
	res.Requests++
	if err != nil {
		return fmt.Errorf("poller: confirm deletions of %d: %w", cid, err)
	}
	slices.Sort(binIDs)
	var confirmed []int64
	for _, id := range missing {
		if _, inBin := slices.BinarySearch(binIDs, id); !inBin {
			at := time.Now()
			inv, err := src.Invoice(ctx, cid, id)
			res.Requests++
			switch {
			case errors.Is(err, rcv.ErrNotFound):
			case err != nil:
				p.log().Warn("cannot confirm a missing document; retrying next scan", "company_id", cid, "document_id", id, "error", err)
				continue
			default: // skipped by a page shift: it exists
				n, err := p.ApplyRead(ctx, cid, id, &inv, at)
				if err != nil {
					return err
				}
				res.Events += n
				continue
			}
		}
		confirmed = append(confirmed, id)
	}
	release, err := p.guardDeletions(ctx, cid, confirmed, len(stored))
	if err != nil {
		return fmt.Errorf("poller: deletion guard of %d: %w", cid, err)
	}
	res.Held = len(confirmed) - len(release)
	for _, id := range release {
		// Confirmed by the bin listing or a GET after it: read no earlier
		// than binAt.
		n, err := p.ApplyRead(ctx, cid, id, nil, binAt)
		if err != nil {
			return err
		}
		res.Events += n
		res.Deleted++
	}
	return nil
}

// RefreshMany brings many documents of one company up to date — webhooks
// announced that they changed — with as few source requests as it can.
// It lists the company's pages (invoices, then credit notes), applying the
// announced documents it finds, for as long as the pages left cost fewer
// requests than fetching the documents still missing one by one; then one
// bin listing confirms deletions, and what is left is fetched alone. For
// 1,000 changed invoices of a company of 5,000 that is 50 requests instead
// of 1,000. Fewer than minListing documents are simply fetched; for more,
// the first page of each kind and the bin are the only requests that may
// turn out wasted (at most 3 more than the GETs). It returns the ids
// handled and the requests made; on error, the ids handled so far.
const minListing = 10

func (p *Poller) RefreshMany(ctx context.Context, src rcv.InvoiceSource, cid int64, ids []int64) ([]int64, int, error) {
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	stored := slices.Sorted(maps.Keys(want))
	var handled []int64
	requests := 0
	for _, kind := range []rcv.Kind{rcv.KindInvoice, rcv.KindCreditNote} {
		if len(want) < minListing {
			break // single fetches are the cheapest
		}
		for page, err := range src.Pages(ctx, cid, kind) {
			requests++
			if err != nil {
				return handled, requests, fmt.Errorf("poller: targeted scan of %d %s page %d: %w", cid, kind, page.Number, err)
			}
			var found []rcv.Invoice
			for _, inv := range page.Invoices {
				if want[inv.ID] {
					found = append(found, inv)
				}
			}
			if _, err := p.applyPage(ctx, cid, found, stored, page.ReadAt); err != nil {
				return handled, requests, err
			}
			for _, inv := range found {
				delete(want, inv.ID)
				handled = append(handled, inv.ID)
			}
			if left := page.LastPage - page.Number; left <= 0 || left >= len(want) {
				break // the rest costs no more as single fetches
			}
		}
	}
	if len(want) >= minListing {
		binAt := time.Now()
		bin, err := src.Bin(ctx, cid)
		requests++
		if err != nil {
			return handled, requests, fmt.Errorf("poller: bin of %d: %w", cid, err)
		}
		for _, id := range bin {
			if want[id] {
				if _, err := p.ApplyRead(ctx, cid, id, nil, binAt); err != nil {
					return handled, requests, err
				}
				delete(want, id)
				handled = append(handled, id)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		requests++
		if _, err := p.Refresh(ctx, src, cid, id); err != nil {
			return handled, requests, err
		}
		handled = append(handled, id)
	}
	return handled, requests, nil
}
