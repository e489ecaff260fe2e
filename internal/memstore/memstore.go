// Package memstore implements the store ports (receivables and dunning) in
// memory, for tests of the use cases that need no server: above all those
// run in a testing/synctest bubble, where time is fake and a goroutine
// waiting on a socket would stop the clock. Each store keeps the contract
// its storetest suite checks, which the KV stores pass too; values go
// through JSON as they do in KV, so nothing is shared with the caller.
package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/incasso-io/incasso/internal/dunning"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// entry is one stored value at a revision; gone marks a deletion (a
// snapshot's tombstone keeps its value).
type entry struct {
	rev  uint64
	val  []byte
	gone bool
}

// table is a map of keys to entries with bucket-wide revisions, as a KV
// bucket's stream sequence.
type table struct {
	mu   sync.Mutex
	last uint64
	m    map[string]entry
}

func (t *table) get(key string) (entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	return e, ok
}

// put stores v under key if its revision is still rev (0: no entry, or a
// deleted one unless strict), and returns the new revision.
func (t *table) put(key string, v any, rev uint64, gone, strict bool) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]entry{}
	}
	e, ok := t.m[key]
	cur := e.rev
	if ok && e.gone && !strict {
		cur = 0 // a KV create succeeds over a delete marker
	}
	if !ok {
		cur = 0
	}
	if cur != rev {
		return 0, fmt.Errorf("%w: %s is at revision %d, not %d", rcv.ErrConflict, key, cur, rev)
	}
	t.last++
	t.m[key] = entry{rev: t.last, val: b, gone: gone}
	return t.last, nil
}

func (t *table) keys(match func(string) bool) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k, e := range t.m {
		if !e.gone && match(k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func decode[T any](e entry) T {
	var v T
	_ = json.Unmarshal(e.val, &v) // written by put from a T
	return v
}

func docKey(cid, id int64) string {
	return strconv.FormatInt(cid, 10) + "." + strconv.FormatInt(id, 10)
}

// Snapshots implements receivables.SnapshotStore.
type Snapshots struct{ t table }

var _ rcv.SnapshotStore = (*Snapshots)(nil)

// Get implements receivables.SnapshotStore.
func (s *Snapshots) Get(_ context.Context, cid, id int64) (rcv.Snapshot, uint64, error) {
	e, ok := s.t.get(docKey(cid, id))
	if !ok {
		return rcv.Snapshot{}, 0, nil
	}
	snap := decode[rcv.Snapshot](e)
	snap.Deleted = e.gone
	return snap, e.rev, nil
}

// Put implements receivables.SnapshotStore (revision 0: nothing stored, not
// even a tombstone).
func (s *Snapshots) Put(_ context.Context, cid, id int64, snap rcv.Snapshot, rev uint64) (uint64, error) {
	return s.t.put(docKey(cid, id), snap, rev, false, true)
}

// Delete implements receivables.SnapshotStore.
func (s *Snapshots) Delete(_ context.Context, cid, id int64, snap rcv.Snapshot, rev uint64) error {
	snap.Deleted, snap.Pending = true, nil
	_, err := s.t.put(docKey(cid, id), snap, rev, true, true)
	return err
}

// IDs implements receivables.SnapshotStore.
func (s *Snapshots) IDs(_ context.Context, cid int64) ([]int64, error) {
	prefix := strconv.FormatInt(cid, 10) + "."
	var ids []int64
	for _, k := range s.t.keys(func(k string) bool { return len(k) > len(prefix) && k[:len(prefix)] == prefix }) {
		id, _ := strconv.ParseInt(k[len(prefix):], 10, 64)
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// PutAll implements receivables.SnapshotStore.
func (s *Snapshots) PutAll(ctx context.Context, writes []rcv.SnapshotWrite) ([]uint64, []error) {
	revs, errs := make([]uint64, len(writes)), make([]error, len(writes))
	for i, w := range writes {
		revs[i], errs[i] = s.Put(ctx, w.CompanyID, w.ID, w.Snapshot, w.Rev)
	}
	return revs, errs
}

// Holds implements receivables.HoldStore.
type Holds struct{ t table }

var _ rcv.HoldStore = (*Holds)(nil)

// Get implements receivables.HoldStore.
func (h *Holds) Get(_ context.Context, cid int64) (rcv.DeletionHold, uint64, error) {
	e, ok := h.t.get(strconv.FormatInt(cid, 10))
	if !ok || e.gone {
		return rcv.DeletionHold{}, 0, nil
	}
	return decode[rcv.DeletionHold](e), e.rev, nil
}

// Put implements receivables.HoldStore.
func (h *Holds) Put(_ context.Context, cid int64, d rcv.DeletionHold, rev uint64) (uint64, error) {
	return h.t.put(strconv.FormatInt(cid, 10), d, rev, false, false)
}

// Delete implements receivables.HoldStore.
func (h *Holds) Delete(_ context.Context, cid int64, rev uint64) error {
	_, err := h.t.put(strconv.FormatInt(cid, 10), nil, rev, true, true)
	return err
}

// List implements receivables.HoldStore.
func (h *Holds) List(ctx context.Context) (map[int64]rcv.DeletionHold, error) {
	out := map[int64]rcv.DeletionHold{}
	for _, k := range h.t.keys(func(string) bool { return true }) {
		cid, _ := strconv.ParseInt(k, 10, 64)
		out[cid], _, _ = h.Get(ctx, cid)
	}
	return out, nil
}

// Owners implements receivables.Owners.
type Owners struct {
	mu sync.Mutex
	m  map[int64]int64
}

var _ rcv.Owners = (*Owners)(nil)

// Claim implements receivables.Owners.
func (o *Owners) Claim(_ context.Context, cid int64, ids []int64) ([]int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[int64]int64{}
	}
	out := make([]int64, len(ids))
	for i, id := range ids {
		if _, ok := o.m[id]; !ok {
			o.m[id] = cid
		}
		out[i] = o.m[id]
	}
	return out, nil
}

// Batches implements receivables.Batches; marks are kept for the process's
// life, which is longer than Retention claims.
type Batches struct {
	mu sync.Mutex
	m  map[string]bool
}

var _ rcv.Batches = (*Batches)(nil)

// MarkPublished implements receivables.Batches.
func (b *Batches) MarkPublished(_ context.Context, batch string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]bool{}
	}
	b.m[batch] = true
	return nil
}

// Published implements receivables.Batches.
func (b *Batches) Published(_ context.Context, batch string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[batch], nil
}

// Retention implements receivables.Batches.
func (b *Batches) Retention() time.Duration { return 7 * 24 * time.Hour }

// Cases implements dunning.CaseStore.
type Cases struct{ t table }

var _ dunning.CaseStore = (*Cases)(nil)

// Get implements dunning.CaseStore.
func (s *Cases) Get(_ context.Context, cid, id int64) (dunning.Case, uint64, error) {
	e, ok := s.t.get(docKey(cid, id))
	if !ok || e.gone {
		return dunning.Case{}, 0, nil
	}
	return decode[dunning.Case](e), e.rev, nil
}

// Put implements dunning.CaseStore.
func (s *Cases) Put(_ context.Context, c dunning.Case, rev uint64) (uint64, error) {
	return s.t.put(docKey(c.CompanyID, c.InvoiceID), c, rev, false, false)
}

// List implements dunning.CaseStore.
func (s *Cases) List(ctx context.Context, cid int64) ([]dunning.Case, error) {
	prefix := strconv.FormatInt(cid, 10) + "."
	var out []dunning.Case
	for _, k := range s.t.keys(func(k string) bool { return cid == 0 || (len(k) > len(prefix) && k[:len(prefix)] == prefix) }) {
		e, _ := s.t.get(k)
		out = append(out, decode[dunning.Case](e))
	}
	return out, nil
}

// Clients implements dunning.ClientIndex.
type Clients struct{ t table }

var _ dunning.ClientIndex = (*Clients)(nil)

// Get implements dunning.ClientIndex.
func (s *Clients) Get(_ context.Context, cid int64, client string) (dunning.ClientRecord, uint64, error) {
	e, ok := s.t.get(strconv.FormatInt(cid, 10) + "." + client)
	if !ok || e.gone {
		return dunning.ClientRecord{}, 0, nil
	}
	return decode[dunning.ClientRecord](e), e.rev, nil
}

// Put implements dunning.ClientIndex.
func (s *Clients) Put(_ context.Context, cid int64, client string, r dunning.ClientRecord, rev uint64) (uint64, error) {
	return s.t.put(strconv.FormatInt(cid, 10)+"."+client, r, rev, false, false)
}

// Outbox implements dunning.Outbox.
type Outbox struct{ t table }

var _ dunning.Outbox = (*Outbox)(nil)

// Begin implements dunning.Outbox.
func (o *Outbox) Begin(_ context.Context, key string, r dunning.OutboxRecord) (dunning.OutboxRecord, error) {
	_, err := o.t.put(key, r, 0, false, false)
	if err == nil {
		return r, nil
	}
	e, _ := o.t.get(key)
	prev := decode[dunning.OutboxRecord](e)
	if prev.State == dunning.OutboxRetry {
		if _, err := o.t.put(key, r, e.rev, false, false); err != nil {
			return prev, err
		}
		return r, nil
	}
	return prev, err
}

// Complete implements dunning.Outbox.
func (o *Outbox) Complete(_ context.Context, key string, r dunning.OutboxRecord) error {
	for {
		e, _ := o.t.get(key)
		if _, err := o.t.put(key, r, e.rev, false, false); err == nil {
			return nil
		}
	}
}

// Audit implements dunning.Audit.
type Audit struct {
	mu sync.Mutex
	m  map[string][]dunning.AuditEntry
}

var _ dunning.Audit = (*Audit)(nil)

// Append implements dunning.Audit.
func (a *Audit) Append(_ context.Context, cid, id int64, e dunning.AuditEntry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string][]dunning.AuditEntry{}
	}
	a.m[docKey(cid, id)] = append(a.m[docKey(cid, id)], e)
	return nil
}

// Timeline implements dunning.Audit.
func (a *Audit) Timeline(_ context.Context, cid, id int64) ([]dunning.AuditEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.m[docKey(cid, id)]), nil
}

// Modes implements dunning.ModeStore.
type Modes struct{ t table }

var _ dunning.ModeStore = (*Modes)(nil)

// Get implements dunning.ModeStore.
func (m *Modes) Get(_ context.Context, cid int64) (dunning.ModeRecord, error) {
	e, ok := m.t.get(strconv.FormatInt(cid, 10))
	if !ok {
		return dunning.ModeRecord{}, nil
	}
	return decode[dunning.ModeRecord](e), nil
}

// Put implements dunning.ModeStore.
func (m *Modes) Put(_ context.Context, cid int64, r dunning.ModeRecord) error {
	for {
		e, _ := m.t.get(strconv.FormatInt(cid, 10))
		if _, err := m.t.put(strconv.FormatInt(cid, 10), r, e.rev, false, false); err == nil {
			return nil
		}
	}
}
