package dunning

import (
	"context"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// CaseStore keeps cases with compare-and-set revisions.
type CaseStore interface {
	// Get returns the case and its revision (0: none).
	Get(ctx context.Context, cid, id int64) (Case, uint64, error)
	// Put stores c if the revision is still rev (0: must not exist).
	// Returns receivables.ErrConflict otherwise.
	Put(ctx context.Context, c Case, rev uint64) (uint64, error)
	// List returns the cases of a company (0: all companies).
	List(ctx context.Context, cid int64) ([]Case, error)
}

// ClientIndex groups a client's open cases and remembers the last contact.
type ClientIndex interface {
	Get(ctx context.Context, cid int64, client string) (ClientRecord, uint64, error)
	Put(ctx context.Context, cid int64, client string, r ClientRecord, rev uint64) (uint64, error)
}

// ClientRecord is a client's open cases and last contact.
type ClientRecord struct {
	Invoices    []int64   `json:"invoices"`
	LastContact time.Time `json:"last_contact,omitzero"`
	// QuietUntil holds the client's sends while its events are still
	// arriving (see Engine.GroupDelay).
	QuietUntil time.Time `json:"quiet_until,omitzero"`
}

// OutboxState of a delivery.
type OutboxState string

// Outbox states.
const (
	OutboxPending OutboxState = "pending" // written before sending
	OutboxSent    OutboxState = "sent"
	OutboxFailed  OutboxState = "failed" // permanent failure (bounce)
	OutboxRetry   OutboxState = "retry"  // temporary failure: nothing was delivered
	// OutboxPossiblySent: the connection dropped after the message was
	// handed over, before the server confirmed it. Never re-sent by itself.
	OutboxPossiblySent OutboxState = "possibly_sent"
)

// OutboxRecord is the at-most-once record of (invoice, stage, channel).
type OutboxRecord struct {
	State     OutboxState `json:"state"`
	MessageID string      `json:"message_id"`
	At        time.Time   `json:"at"`
	Error     string      `json:"error,omitempty"`
}

// Outbox records deliveries before they happen.
type Outbox interface {
	// Begin records a pending delivery under key. It fails with
	// receivables.ErrConflict if the key exists in any state but retry,
	// and returns the existing record.
	Begin(ctx context.Context, key string, r OutboxRecord) (OutboxRecord, error)
	// Complete records the outcome.
	Complete(ctx context.Context, key string, r OutboxRecord) error
}

// Item is one invoice in a message.
type Item struct {
	Invoice      rcv.Invoice
	Stage        policy.Stage
	DaysOverdue  int
	Demand       Demand // what is asked for: the late installments less credits
	Interest     decimal.Decimal
	Compensation decimal.Decimal
	Rates        []decimal.Decimal // statutory rates applied (percent)
	InterestFrom rcv.Date          // first day interest runs
}

// Creditor is who a message is from and how to pay.
type Creditor struct {
	Name, VATNumber, TaxCode, Address string
	Email, PEC, Phone                 string
	IBAN, Bank                        string
	Signature, FromName, ReplyTo      string
}

// CreditorFrom is a policy's creditor block.
func CreditorFrom(c policy.Creditor) Creditor {
	return Creditor{Name: c.Name, VATNumber: c.VATNumber, TaxCode: c.TaxCode, Address: c.Address, Email: c.Email, PEC: c.PEC,
		Phone: c.Phone, IBAN: c.IBAN, Bank: c.Bank, Signature: c.Signature, FromName: c.FromName, ReplyTo: c.ReplyTo}
}

// Message is one reminder to one client on one channel, possibly listing
// several invoices.
type Message struct {
	CompanyID int64
	Client    rcv.Client
	Channel   policy.Channel
	Template  string // of the most advanced stage in the message
	Stage     string
	Language  string
	Platform  string
	MessageID string // derived from the outbox keys: the same message always has the same id
	Items     []Item
	Date      rcv.Date
	History   []Sent // earlier contacts (hand-off dossier)
	Creditor  Creditor
	// PriorContacts counts the earlier stages delivered to the client for
	// these invoices: a letter claims earlier reminders only when there
	// were some.
	PriorContacts int
	// Ordinal is which message of its template this is (1: the first
	// reminder, 2: the second), so that the second reads differently.
	Ordinal    int
	TermDays   int  // the term the letter gives (formal notice)
	Clause1454 bool // add the art. 1454 c.c. clause
	// Recall is set on a hand-off recall: why the platform must stop.
	Recall string
	// Attachments are the invoices' PDFs (e-mail and PEC).
	Attachments []Attachment
}

// Attachment is a file sent with a message.
type Attachment struct {
	Name        string
	ContentType string
	Data        []byte
}

// Sender delivers messages on one channel. It returns an error wrapping
// ErrUndeliverable when the message can never be delivered (bounce, refused
// recipient), one wrapping ErrPossiblySent when it cannot tell whether the
// message was delivered (never retried by itself); any other error means
// nothing was delivered and a retry is safe.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Outcome is a dunning.* event.
type Outcome struct {
	Type      string // dunning.reminder_sent, ...
	CompanyID int64
	InvoiceID int64
	Key       string
	At        time.Time
	Case      Case
	// Transition is set for dunning.closed, paused and resumed.
	Transition *OutcomeTransition
	// Delivery is set for dunning.reminder_sent, delivery_failed and
	// escalated.
	Delivery *OutcomeDelivery
}

// OutcomeTransition is a case's change of state.
type OutcomeTransition struct {
	From     State
	To       State
	Reason   string
	Operator string
}

// OutcomeDelivery is one message of a stage on a channel.
type OutcomeDelivery struct {
	Stage             string
	Channel           string
	MessageID         string
	InvoicesInMessage int
	Error             string   // delivery_failed
	Dossier           *Message // escalated: what the collection platform received
	// PossiblySent: reminder_sent for a delivery that may have gone out
	// (the connection dropped before the server confirmed it, or the
	// process died between sending and recording): check before resending.
	PossiblySent bool
}

// Outcomes publishes dunning.* events.
type Outcomes interface {
	Publish(ctx context.Context, o Outcome) error
}

// AuditEntry is one change of a case.
type AuditEntry struct {
	At       time.Time `json:"at"`
	Action   string    `json:"action"`
	From     State     `json:"from,omitempty"`
	To       State     `json:"to,omitempty"`
	Stage    string    `json:"stage,omitempty"`
	Channel  string    `json:"channel,omitempty"`
	Operator string    `json:"operator,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// Audit appends to and reads a case's timeline.
type Audit interface {
	Append(ctx context.Context, cid, id int64, e AuditEntry) error
	Timeline(ctx context.Context, cid, id int64) ([]AuditEntry, error)
}

// Wakeups schedule durable wake-ups per case (timers.Scheduler).
type Wakeups interface {
	Schedule(ctx context.Context, cid, id int64, at time.Time) error
}

// Ledger is every document of a company as last seen (the poller's
// snapshots): what the reports count, paid and unchased invoices included.
type Ledger interface {
	// Documents returns the company's live documents (invoices and credit
	// notes; deleted ones left out).
	Documents(ctx context.Context, cid int64) ([]rcv.Invoice, error)
}
