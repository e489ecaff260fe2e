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

// Change is one transition detected on a document. Key identifies the
// transition (e.g. the installment and its due date), so the same
// transition always gets the same event id.
type Change struct {
	Type        EventType
	Key         string
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
}
