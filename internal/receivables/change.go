package receivables

import "time"

// EventType names a receivables transition. The string is the CloudEvent
// type and the last tokens of the NATS subject.
type EventType string

// Receivables event types.
const (
	InvoiceCreated       EventType = "invoice.created"
	InvoiceUpdated       EventType = "invoice.updated"
	InvoiceDueSoon       EventType = "invoice.due_soon"
	InvoiceOverdue       EventType = "invoice.overdue"
	InvoicePartiallyPaid EventType = "invoice.partially_paid"
	InvoicePaid          EventType = "invoice.paid"
	InvoiceReopened      EventType = "invoice.reopened"
	InvoiceDeleted       EventType = "invoice.deleted"
	CreditNoteCreated    EventType = "credit_note.created"
	CreditNoteUpdated    EventType = "credit_note.updated"
	CreditNoteDeleted    EventType = "credit_note.deleted"
)

// AllEventTypes lists the receivables event types in documentation order.
var AllEventTypes = []EventType{
	InvoiceCreated, InvoiceUpdated, InvoiceDueSoon, InvoiceOverdue, InvoicePartiallyPaid, InvoicePaid,
	InvoiceReopened, InvoiceDeleted, CreditNoteCreated, CreditNoteUpdated, CreditNoteDeleted,
}

// FieldChange is one field an update changed, with its previous and current
// values rendered as strings (money as decimal strings, dates ISO 8601).
type FieldChange struct {
	Field    string `json:"field"`
	Previous string `json:"previous"`
	Current  string `json:"current"`
}

// Change is one transition detected on a document. Seq numbers the
// transitions of one document for its whole life (1, 2, …, across a
// deletion and a restore from the bin): the event id is derived from the
// company, the document, Seq and Type, so it is unique per occurrence and
// the same on every retry of that occurrence.
type Change struct {
	Type        EventType
	Seq         uint64
	Invoice     Invoice       // the document after the change (before, for deletions)
	Installment *Installment  // the installment concerned, for due_soon/overdue/reopened
	Paid        []Installment // installments newly paid, for paid/partially_paid
	Changes     []FieldChange // what an update changed
	At          time.Time     // when it happened: detection time, or the scheduled instant
}

// Snapshot is the last state Incasso saw of a document plus what it already
// announced, as kept in the snapshot store.
type Snapshot struct {
	Invoice Invoice `json:"invoice"`
	// Deleted marks a document that was announced as deleted (a tombstone).
	Deleted bool `json:"deleted,omitempty"`
	// Notified holds the keys of time-based events already published
	// (due_soon/overdue per installment and due date).
	Notified []string `json:"notified,omitempty"`
	// TimerAt is the instant of the durable timer set for the document's
	// next time-based event (zero: none).
	TimerAt time.Time `json:"timer_at,omitzero"`
	// Seq is the sequence number of the document's last transition (0:
	// none yet). It survives a deletion: the tombstone keeps it.
	Seq uint64 `json:"seq,omitempty"`
	// Pending are transitions decided on this state that are not known to
	// be published yet (the write-ahead part of the commit protocol: the
	// snapshot is saved with them, then they are published, then the
	// snapshot is saved without them, or their Batch is marked published).
	// Whoever reads a snapshot with Pending whose Batch is not known to be
	// published publishes them again, with the same ids, before anything
	// else.
	Pending []Pending `json:"pending,omitempty"`
	// Batch names the page of a scan whose transitions were saved together
	// (see Batches): once it is marked published, the Pending of every
	// snapshot of the page are known to be published without a second
	// write per document.
	Batch string `json:"batch,omitempty"`
	// DecidedAt is when Pending were saved.
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// ReadAt is when the FIC request that this state was read from was
	// sent (zero: unknown). A read sent earlier, applied later — a scan's
	// page that was slow to arrive or to apply, on this replica or
	// another, after a webhook's GET — is stale: it is not applied, so it
	// cannot undo a newer state and publish a transition that never
	// happened (and its reverse afterwards).
	ReadAt time.Time `json:"read_at,omitzero"`
}

// Pending is a Change without its document: the document of every pending
// change is the snapshot's Invoice (the state after the change, or the
// last state before a deletion).
type Pending struct {
	Type        EventType     `json:"type"`
	Seq         uint64        `json:"seq"`
	At          time.Time     `json:"at"`
	Installment *Installment  `json:"installment,omitempty"`
	Paid        []Installment `json:"paid,omitempty"`
	Changes     []FieldChange `json:"changes,omitempty"`
}

// PendingOf strips the document off changes, for Snapshot.Pending.
func PendingOf(changes []Change) []Pending {
	if len(changes) == 0 {
		return nil
	}
	out := make([]Pending, len(changes))
	for i, c := range changes {
		out[i] = Pending{Type: c.Type, Seq: c.Seq, At: c.At, Installment: c.Installment, Paid: c.Paid, Changes: c.Changes}
	}
	return out
}

// PendingChanges rebuilds the pending changes of s with their document.
func (s *Snapshot) PendingChanges() []Change {
	if len(s.Pending) == 0 {
		return nil
	}
	out := make([]Change, len(s.Pending))
	for i, p := range s.Pending {
		out[i] = Change{Type: p.Type, Seq: p.Seq, Invoice: s.Invoice, Installment: p.Installment, Paid: p.Paid, Changes: p.Changes, At: p.At}
	}
	return out
}
