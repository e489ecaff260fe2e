// Receivables events applied to cases: opening, updating, closing (after
// a freshness check), credit notes, state transitions and their outcomes.

package dunning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// HandleEvent applies a receivables event to the invoice's case. An event
// that would close an open case (deleted, paid) is first checked against
// FIC with one GET: the event stream is trusted for what it adds, not for
// what it takes away, so a forged or stale event cannot stop a live case.
// When FIC disagrees, its state is applied instead (as an update).
func (e *Engine) HandleEvent(ctx context.Context, typ rcv.EventType, inv rcv.Invoice) error {
	if inv.Kind == rcv.KindInvoice && (typ == rcv.InvoiceDeleted || typ == rcv.InvoicePaid) && e.Fresh != nil {
		c, rev, err := e.Cases.Get(ctx, inv.CompanyID, inv.ID)
		if err != nil {
			return err
		}
		if rev > 0 && c.State != Closed {
			fresh, err := e.Fresh(inv.CompanyID)
			if err != nil {
				return err
			}
			cur, err := fresh.Invoice(ctx, inv.CompanyID, inv.ID)
			switch {
			case errors.Is(err, rcv.ErrNotFound):
				typ = rcv.InvoiceDeleted // confirmed (a payment event for a deleted invoice closes it as deleted)
			case err != nil:
				return fmt.Errorf("dunning: freshness check of %s %d/%d: %w", typ, inv.CompanyID, inv.ID, err)
			case cur.FullyPaid() || !cur.AmountDue().IsPositive():
				typ, inv = rcv.InvoicePaid, cur
			default:
				e.log().Warn("event contradicted by FIC: the invoice is still open; its current state is applied instead",
					"event", typ, "company_id", inv.CompanyID, "invoice_id", inv.ID)
				typ, inv = rcv.InvoiceUpdated, cur
			}
		}
	}
	return e.handle(ctx, typ, inv)
}

// handle applies an event already known to be true.
func (e *Engine) handle(ctx context.Context, typ rcv.EventType, inv rcv.Invoice) error {
	if inv.Kind == rcv.KindCreditNote {
		if typ == rcv.CreditNoteCreated {
			return e.credit(ctx, inv)
		}
		return nil
	}
	if inv.Kind != rcv.KindInvoice {
		return nil
	}
	p := e.Policies.For(inv.CompanyID)
	var (
		tr    *Transition
		quiet time.Time // set when a stage became due on this event
	)
	c, err := e.update(ctx, inv.CompanyID, inv.ID, func(c *Case, exists bool) (bool, error) {
		var cur *Case
		if exists {
			cur = c
		}
		next, t := Apply(cur, typ, inv, e.now(), p, e.Calendar)
		if next == nil {
			return false, nil
		}
		tr, quiet = t, time.Time{}
		*c = *next
		d := Decide(e.now(), c, p, e.Calendar)
		c.WakeAt = d.WakeAt
		switch {
		case d.Send != nil:
			c.WakeAt = e.now().Add(e.GroupDelay)
			if e.GroupDelay > 0 {
				quiet = c.WakeAt
			}
		case d.Resume:
			c.WakeAt = e.now()
		}
		return true, nil
	})
	if err != nil || c == nil {
		return err
	}
	if err := e.indexClient(ctx, c, quiet); err != nil {
		return err
	}
	if tr != nil {
		if err := e.transition(ctx, c, tr, "", ""); err != nil {
			return err
		}
	}
	return e.schedule(ctx, c)
}

// credit applies a credit note to the case of the invoice it refers to
// (matched on the client and the referenced invoice number, which FIC
// carries in the e-invoice data): the credit reduces what the case
// demands, and closes it when it covers what is still owed.
func (e *Engine) credit(ctx context.Context, cn rcv.Invoice) error {
	if cn.RefNumber == "" {
		return nil
	}
	r, _, err := e.Clients.Get(ctx, cn.CompanyID, ClientKey(&cn))
	if err != nil {
		return err
	}
	for _, id := range r.Invoices {
		c, _, err := e.Cases.Get(ctx, cn.CompanyID, id)
		if err != nil {
			return err
		}
		if c.InvoiceID == 0 || c.State == Closed || c.Invoice.Number != cn.RefNumber || (!cn.RefDate.IsZero() && cn.RefDate != c.Invoice.Date) {
			continue
		}
		// What the credit takes off the client's debt: its gross amount, or
		// its net one under split payment (the PA pays the VAT itself).
		amount := cn.Gross
		if cn.SplitPayment {
			amount = cn.Net
		}
		var tr *Transition
		nc, err := e.update(ctx, c.CompanyID, c.InvoiceID, func(x *Case, exists bool) (bool, error) {
			if !exists || x.State == Closed || slices.ContainsFunc(x.Credits, func(k Credit) bool { return k.ID == cn.ID }) {
				return false, nil
			}
			x.Credits = append(x.Credits, Credit{ID: cn.ID, Number: cn.Number, Amount: amount})
			tr = nil
			if !x.Outstanding().IsPositive() {
				_, tr = closeCase(x, ReasonCredited)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if nc == nil {
			continue
		}
		_ = e.Audit.Append(ctx, nc.CompanyID, nc.InvoiceID, AuditEntry{At: e.now(), Action: "credited",
			Reason: fmt.Sprintf("credit note %s: %s (still owed %s)", cn.Number, amount.StringFixed(2), decimal.Max(nc.Outstanding(), decimal.Zero).StringFixed(2))})
		if tr != nil {
			if err := e.indexClient(ctx, nc, time.Time{}); err != nil {
				return err
			}
			if err := e.transition(ctx, nc, tr, "", "credit note "+cn.Number); err != nil {
				return err
			}
		}
		if err := e.schedule(ctx, nc); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) transition(ctx context.Context, c *Case, tr *Transition, operator, reason string) error {
	if reason == "" {
		reason = tr.Reason
	}
	if err := e.Audit.Append(ctx, c.CompanyID, c.InvoiceID, AuditEntry{At: e.now(), Action: "state", From: tr.From, To: tr.To, Operator: operator, Reason: reason}); err != nil {
		return err
	}
	typ := ""
	switch {
	case tr.To == Closed:
		typ = "dunning.closed"
	case tr.To == Paused || tr.To == Disputed || tr.To == Promised || tr.To == Held:
		typ = "dunning.paused"
	case tr.To == Active && tr.From != "":
		typ = "dunning.resumed"
	}
	if typ == "" {
		return nil
	}
	if err := e.Outcomes.Publish(ctx, Outcome{Type: typ, CompanyID: c.CompanyID, InvoiceID: c.InvoiceID, At: e.now(), Case: *c,
		Key: string(tr.To) + ":" + c.Updated.UTC().Format(time.RFC3339Nano), Transition: &OutcomeTransition{From: tr.From, To: tr.To, Reason: reason, Operator: operator}}); err != nil {
		return err
	}
	if tr.From == Escalated && tr.To == Closed {
		return e.recall(ctx, c, reason)
	}
	return nil
}

// recall tells the collection platform that an invoice it was handed is
// settled (paid, credited, deleted or written off), once, through the
// hand-off channel and the outbox. A recall that cannot be delivered is an
// ops task: the platform must hear it some way.
func (e *Engine) recall(ctx context.Context, c *Case, reason string) error {
	p := e.Policies.For(c.CompanyID)
	key := OutboxKey(c.CompanyID, c.InvoiceID, "recall", policy.Webhook)
	sum := sha256.Sum256([]byte(key))
	msgID := "recall-" + hex.EncodeToString(sum[:12])
	if _, err := e.Outbox.Begin(ctx, key, OutboxRecord{State: OutboxPending, MessageID: msgID, At: e.now()}); err != nil {
		if errors.Is(err, rcv.ErrConflict) {
			return nil // already recalled (or attempted)
		}
		return err
	}
	sender, ok := e.Senders[policy.Webhook]
	if !ok {
		sender = unconfigured{policy.Webhook}
	}
	m := Message{CompanyID: c.CompanyID, Client: c.Invoice.Client, Channel: policy.Webhook, Template: "recall", Stage: "recall",
		Platform: p.Platform, MessageID: msgID, Date: rcv.DateIn(e.now(), rcv.Rome), Recall: reason, History: c.Sent,
		Items: []Item{{Invoice: c.Invoice}}, Creditor: CreditorFrom(p.Creditor)}
	err := sender.Send(ctx, m)
	state := OutboxSent
	if err != nil {
		state = OutboxFailed
		e.attention(ctx, c, fmt.Sprintf("recall of the hand-off to %s not delivered (%v): tell the platform the invoice is %s", p.Platform, err, reason))
	}
	if cerr := e.Outbox.Complete(ctx, key, OutboxRecord{State: state, MessageID: msgID, At: e.now()}); cerr != nil {
		return cerr
	}
	return e.Audit.Append(ctx, c.CompanyID, c.InvoiceID, AuditEntry{At: e.now(), Action: "recall_" + string(state), Channel: string(policy.Webhook), Reason: reason})
}

func (e *Engine) schedule(ctx context.Context, c *Case) error {
	if e.Wakeups == nil {
		return nil
	}
	return e.Wakeups.Schedule(ctx, c.CompanyID, c.InvoiceID, c.WakeAt)
}

// indexClient keeps the client's list of open cases and, when quiet is set
// (a stage became due on an event), extends its quiet period to quiet.
func (e *Engine) indexClient(ctx context.Context, c *Case, quiet time.Time) error {
	key := ClientKey(&c.Invoice)
	open := c.State != Closed
	for i := 0; i < casRetries; i++ {
		r, rev, err := e.Clients.Get(ctx, c.CompanyID, key)
		if err != nil {
			return err
		}
		has := slices.Contains(r.Invoices, c.InvoiceID)
		louder := quiet.After(r.QuietUntil)
		if has == open && !louder {
			return nil
		}
		switch {
		case has == open:
		case open:
			r.Invoices = append(r.Invoices, c.InvoiceID)
			slices.Sort(r.Invoices)
		default:
			r.Invoices = slices.DeleteFunc(r.Invoices, func(x int64) bool { return x == c.InvoiceID })
		}
		if louder {
			r.QuietUntil = quiet
		}
		if _, err := e.Clients.Put(ctx, c.CompanyID, key, r, rev); err == nil {
			return nil
		} else if !errors.Is(err, rcv.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("dunning: client index %d/%s: %w", c.CompanyID, key, rcv.ErrConflict)
}
