package receivables

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

// Errors the use cases branch on. Adapters wrap them.
var (
	// ErrNotFound: the document does not exist at the source (deleted or
	// never existed).
	ErrNotFound = errors.New("receivables: not found")
	// ErrConflict: a compare-and-set write lost against a concurrent one;
	// re-read and retry.
	ErrConflict = errors.New("receivables: conflicting write")
	// ErrQuotaExhausted: the source's quota is used up; see QuotaError.
	ErrQuotaExhausted = errors.New("receivables: source quota exhausted")
)

// QuotaError says when the source may be asked again.
type QuotaError struct {
	ResetAt time.Time
	Err     error
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("quota exhausted until %s: %v", e.ResetAt.UTC().Format(time.RFC3339), e.Err)
}

// Unwrap exposes ErrQuotaExhausted and the cause.
func (e *QuotaError) Unwrap() []error { return []error{ErrQuotaExhausted, e.Err} }

// Page is one page of a source scan. Errors are documents of the page that
// could not be read; the scan is not complete if any page has some.
type Page struct {
	Number   int
	LastPage int
	Invoices []Invoice
	Errors   []error
	// ReadAt is when the page was requested (zero: unknown). A snapshot
	// read later is not overwritten by it (see Snapshot.ReadAt).
	ReadAt time.Time
}

// InvoiceSource is Fatture in Cloud as the poller needs it, in domain terms.
// Implementations are safe for concurrent use.
type InvoiceSource interface {
	// Pages streams every document of a kind, one page at a time, sorted by
	// id. Iteration stops at the first error, which is yielded.
	Pages(ctx context.Context, companyID int64, kind Kind) iter.Seq2[Page, error]
	// Invoice fetches one document. Returns ErrNotFound if it does not exist.
	Invoice(ctx context.Context, companyID, id int64) (Invoice, error)
	// Bin returns the ids of the documents in the company's bin.
	Bin(ctx context.Context, companyID int64) ([]int64, error)
}

// SnapshotStore keeps the last seen state of every document. Revisions make
// writes compare-and-set. Implementations are safe for concurrent use.
type SnapshotStore interface {
	// Get returns the snapshot and its revision; rev 0 means none stored.
	// A deleted document's tombstone is returned with Deleted set (and its
	// transition sequence number) and a revision.
	Get(ctx context.Context, companyID, id int64) (Snapshot, uint64, error)
	// Put stores s if the stored revision is still rev (0: nothing stored,
	// not even a tombstone) and returns the new revision. Returns
	// ErrConflict otherwise.
	Put(ctx context.Context, companyID, id int64, s Snapshot, rev uint64) (uint64, error)
	// Delete replaces the snapshot with tombstone s (after the deletion was
	// announced) if its revision is still rev. Returns ErrConflict
	// otherwise. A tombstone is not listed by IDs.
	Delete(ctx context.Context, companyID, id int64, s Snapshot, rev uint64) error
	// IDs returns the ids of every stored document of a company (not
	// tombstones).
	IDs(ctx context.Context, companyID int64) ([]int64, error)
	// PutAll is Put for many snapshots in one round of requests. It returns
	// one new revision and one error per write (nil: stored; wrapping
	// ErrConflict: lost compare-and-set); a failed write does not stop the
	// others.
	PutAll(ctx context.Context, writes []SnapshotWrite) ([]uint64, []error)
}

// SnapshotWrite is one compare-and-set write of SnapshotStore.PutAll.
type SnapshotWrite struct {
	CompanyID, ID int64
	Snapshot      Snapshot
	Rev           uint64 // the revision the snapshot was diffed against; 0: must not exist
}

// Publisher publishes transitions. Publish returns only once every change is
// durably stored (or recognised as a duplicate of an earlier publish).
type Publisher interface {
	Publish(ctx context.Context, changes []Change) error
}

// Timers schedule durable wake-ups for time-based events.
type Timers interface {
	// Schedule asks for Fire(companyID, id) at instant at, replacing any
	// earlier schedule of the document. A zero at cancels it.
	Schedule(ctx context.Context, companyID, id int64, at time.Time) error
	// ScheduleAll is Schedule for many documents in one round of requests.
	ScheduleAll(ctx context.Context, timers []Timer) error
}

// Timer is one document's wake-up for Timers.ScheduleAll; a zero At cancels.
type Timer struct {
	CompanyID, ID int64
	At            time.Time
}

// DeletionHold is what a company's reconciliation scans would have
// announced deleted and the deletion guard held back instead: more than
// the configured share of the company's documents vanishing at once looks
// like a lost scope or a FIC bug (a 200 with an empty list), not like a
// person deleting invoices.
type DeletionHold struct {
	IDs       []int64   `json:"ids"`    // held documents, sorted
	Stored    int       `json:"stored"` // documents the company had when they were held
	HeldAt    time.Time `json:"held_at"`
	Agreeing  int       `json:"agreeing"`            // complete scans that confirmed them since
	Confirmed bool      `json:"confirmed,omitempty"` // released by an operator
}

// HoldStore keeps held deletions per company. Revisions make writes
// compare-and-set (ErrConflict). Implementations are safe for concurrent use.
type HoldStore interface {
	// Get returns the company's hold and its revision (0: none).
	Get(ctx context.Context, companyID int64) (DeletionHold, uint64, error)
	// Put stores h if the revision is still rev (0: must not exist).
	Put(ctx context.Context, companyID int64, h DeletionHold, rev uint64) (uint64, error)
	// Delete removes the hold if its revision is still rev.
	Delete(ctx context.Context, companyID int64, rev uint64) error
	// List returns every company's hold.
	List(ctx context.Context) (map[int64]DeletionHold, error)
}

// Owners records which company each document id belongs to (FIC's ids are
// unique across companies), so that a document served under another
// company is refused instead of adopted. Safe for concurrent use.
type Owners interface {
	// Claim records companyID as the owner of every id not claimed yet and
	// returns each id's owner, in order.
	Claim(ctx context.Context, companyID int64, ids []int64) ([]int64, error)
}

// Batches records which batches of pending transitions are published (see
// Snapshot.Batch): one record per page of a scan instead of one more
// snapshot write per document. Records expire after a retention the
// implementation states. Safe for concurrent use.
type Batches interface {
	// MarkPublished records that every transition saved under batch is
	// published.
	MarkPublished(ctx context.Context, batch string) error
	// Published reports whether batch was marked published.
	Published(ctx context.Context, batch string) (bool, error)
	// Retention is how long a mark is kept.
	Retention() time.Duration
}
