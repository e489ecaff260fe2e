package dunning

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/interest"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// ErrUndeliverable marks a delivery that can never succeed (see Sender).
var ErrUndeliverable = errors.New("dunning: undeliverable")

// ErrPossiblySent marks a delivery whose outcome is unknown (see Sender).
var ErrPossiblySent = errors.New("dunning: possibly sent")

// ErrNoCase is returned by operations on an invoice without a case.
var ErrNoCase = errors.New("dunning: no case for this invoice")

// Fresh re-reads an invoice right before a send (one FIC GET).
type Fresh interface {
	Invoice(ctx context.Context, cid, id int64) (rcv.Invoice, error)
}

// Engine executes dunning decisions. It is safe for concurrent use.
type Engine struct {
	Cases    CaseStore
	Clients  ClientIndex
	Outbox   Outbox
	Audit    Audit
	Outcomes Outcomes
	Wakeups  Wakeups
	Fresh    func(cid int64) (Fresh, error)
	Senders  map[policy.Channel]Sender
	Policies *policy.Set
	Calendar *calendar.Calendar
	Rates    *interest.Table
	Now      func() time.Time
	Log      *slog.Logger
	// Creditors returns who a company's letters are from and how to pay
	// (FIC's company details merged with the policy's creditor block); nil:
	// the policy's block alone.
	Creditors func(ctx context.Context, cid int64) (Creditor, error)
	// Modes keeps each company's mode (live, shadow); nil: the policy's.
	Modes ModeStore
	// Ledger is every document of a company, for the reports; nil: they
	// count the cases only.
	Ledger Ledger
	// InvoicePDF fetches an invoice's PDF for attachment (policy
	// attach_invoice_pdf); nil: no attachments.
	InvoicePDF func(ctx context.Context, cid, id int64) ([]byte, error)
	// Contacts returns a client's current record in FIC (package contacts:
	// cached, refreshed by webhook). A message goes to today's e-mail and
	// PEC, not to those copied onto the invoice; nil or an error: the
	// invoice's.
	Contacts func(ctx context.Context, cid, clientID int64) (rcv.Client, error)

	modes sync.Map // company → cachedMode
	// GroupDelay is how long a client's events must have been quiet before a
	// stage that became due on an event is sent. A burst (a first sync, an
	// import) delivers a client's invoices over seconds or minutes; sending
	// at the first one would list only what had arrived, and the minimum gap
	// would then hold the rest back for days. Scheduled stages (09:00 on
	// their day) are not delayed. 0 sends at once.
	GroupDelay time.Duration
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

const casRetries = 8

// update loads a case, lets f change it, saves it with CAS (retrying on
// conflict) and returns the saved case. f returns false to save nothing.
func (e *Engine) update(ctx context.Context, cid, id int64, f func(c *Case, exists bool) (bool, error)) (*Case, error) {
	for i := 0; i < casRetries; i++ {
		c, rev, err := e.Cases.Get(ctx, cid, id)
		if err != nil {
			return nil, err
		}
		ok, err := f(&c, rev > 0)
		if err != nil || !ok {
			if rev == 0 && !ok {
				return nil, err
			}
			return &c, err
		}
		c.Updated = e.now()
		if _, err := e.Cases.Put(ctx, c, rev); err != nil {
			if errors.Is(err, rcv.ErrConflict) {
				continue
			}
			return nil, err
		}
		return &c, nil
	}
	return nil, fmt.Errorf("dunning: case %d/%d: %w", cid, id, rcv.ErrConflict)
}
