// Where a reminder is sent: a case wakes, its due stage is grouped with the
// client's other due invoices, re-read from FIC, recorded in the outbox,
// delivered through a channel and recorded again.

package dunning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/interest"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Wake runs a case whose timer fired: resume expired pauses and send the
// stage that is due, grouped with the client's other cases due now.
func (e *Engine) Wake(ctx context.Context, cid, id int64) error {
	_, err := e.run(ctx, cid, id, runOpts{})
	return err
}

type runOpts struct {
	force    *policy.Stage // remind now: this stage regardless of timing
	forceIdx int
	channel  policy.Channel
	operator string
	reason   string
}

// due is one case ready to be sent in a group.
type due struct {
	c     *Case
	stage policy.Stage
	idx   int
}

// run decides and executes for one case; returns the messages sent.
func (e *Engine) run(ctx context.Context, cid, id int64, o runOpts) (int, error) {
	c, _, err := e.Cases.Get(ctx, cid, id)
	if err != nil {
		return 0, err
	}
	if c.InvoiceID == 0 {
		return 0, nil // stale timer
	}
	p := e.Policies.For(cid)
	now := e.now()
	d := Decide(now, &c, p, e.Calendar)
	if d.Resume {
		nc, err := e.update(ctx, cid, id, func(c *Case, _ bool) (bool, error) {
			if c.State != Paused && c.State != Promised {
				return false, nil
			}
			c.State, c.Until = Active, rcv.Date{}
			return true, nil
		})
		if err != nil {
			return 0, err
		}
		if err := e.transition(ctx, nc, &Transition{From: c.State, To: Active, Reason: "expired"}, "", ""); err != nil {
			return 0, err
		}
		c = *nc
		d = Decide(now, &c, p, e.Calendar)
	}
	if o.force != nil {
		d = Decision{Send: o.force, Index: o.forceIdx}
	}
	if d.Send == nil {
		return 0, e.setWake(ctx, &c, d.WakeAt)
	}
	// Minimum gap between two contacts to the same client.
	ckey := ClientKey(&c.Invoice)
	cr, _, err := e.Clients.Get(ctx, cid, ckey)
	if err != nil {
		return 0, err
	}
	if o.force == nil && now.Before(cr.QuietUntil) {
		// The client's events are still arriving: wait until they have
		// been quiet, so that one message lists every invoice due.
		return 0, e.setWake(ctx, &c, cr.QuietUntil)
	}
	if o.force == nil && p.MinGapDays > 0 && !cr.LastContact.IsZero() {
		next := cr.LastContact.Add(time.Duration(p.MinGapDays) * 24 * time.Hour)
		if now.Before(next) {
			return 0, e.setWake(ctx, &c, e.Calendar.SendTime(next))
		}
	}
	group := []due{{c: &c, stage: *d.Send, idx: d.Index}}
	if o.force == nil {
		for _, sid := range cr.Invoices {
			if sid == id {
				continue
			}
			sc, _, err := e.Cases.Get(ctx, cid, sid)
			if err != nil || sc.InvoiceID == 0 {
				continue
			}
			if sd := Decide(now, &sc, p, e.Calendar); sd.Send != nil {
				group = append(group, due{c: &sc, stage: *sd.Send, idx: sd.Index})
			}
		}
	}
	// Freshness: re-read every invoice right before sending.
	fresh, err := e.Fresh(cid)
	if err != nil {
		return 0, err
	}
	kept := group[:0]
	for _, g := range group {
		inv, err := fresh.Invoice(ctx, cid, g.c.InvoiceID)
		switch {
		case errors.Is(err, rcv.ErrNotFound):
			e.log().Info("send aborted: invoice gone", "company_id", cid, "invoice_id", g.c.InvoiceID)
			if err := e.handle(ctx, rcv.InvoiceDeleted, g.c.Invoice); err != nil {
				return 0, err
			}
			continue
		case err != nil:
			return 0, fmt.Errorf("dunning: freshness check of %d/%d: %w", cid, g.c.InvoiceID, err)
		case inv.FullyPaid() || !inv.AmountDue().IsPositive():
			e.log().Info("send aborted: invoice paid", "company_id", cid, "invoice_id", g.c.InvoiceID)
			if err := e.handle(ctx, rcv.InvoicePaid, inv); err != nil {
				return 0, err
			}
			continue
		}
		g.c.Invoice = inv
		kept = append(kept, g)
	}
	group = kept
	if len(group) == 0 {
		return 0, nil
	}
	sent := 0
	channels := map[policy.Channel][]due{}
	for _, g := range group {
		for _, ch := range g.stage.Channels {
			if o.channel != "" && ch != o.channel {
				continue
			}
			channels[ch] = append(channels[ch], g)
		}
	}
	for _, ch := range []policy.Channel{policy.Email, policy.PEC, policy.Webhook} {
		items := channels[ch]
		if len(items) == 0 {
			continue
		}
		n, err := e.deliver(ctx, p, ch, items, now, o)
		sent += n
		if err != nil {
			return sent, err
		}
	}
	// Advance every case of the group past its stage and plan its next wake.
	for _, g := range group {
		nc, err := e.update(ctx, cid, g.c.InvoiceID, func(c *Case, exists bool) (bool, error) {
			if !exists || c.Stage > g.idx {
				return false, nil
			}
			c.Invoice = g.c.Invoice
			c.Stage = g.idx + 1
			if g.stage.Escalate && c.State == Active {
				c.State = Escalated
			}
			c.WakeAt = Decide(now, c, p, e.Calendar).WakeAt
			return true, nil
		})
		if err != nil {
			return sent, err
		}
		if nc != nil {
			if err := e.schedule(ctx, nc); err != nil {
				return sent, err
			}
		}
	}
	if sent > 0 {
		e.touchClient(ctx, cid, ckey, now)
	}
	return sent, nil
}

func (e *Engine) setWake(ctx context.Context, c *Case, at time.Time) error {
	if c.WakeAt.Equal(at) {
		return e.schedule(ctx, c)
	}
	nc, err := e.update(ctx, c.CompanyID, c.InvoiceID, func(x *Case, exists bool) (bool, error) {
		if !exists {
			return false, nil
		}
		x.WakeAt = at
		return true, nil
	})
	if err != nil || nc == nil {
		return err
	}
	return e.schedule(ctx, nc)
}

func (e *Engine) touchClient(ctx context.Context, cid int64, key string, at time.Time) {
	for i := 0; i < casRetries; i++ {
		r, rev, err := e.Clients.Get(ctx, cid, key)
		if err != nil {
			return
		}
		r.LastContact = at
		if _, err := e.Clients.Put(ctx, cid, key, r, rev); !errors.Is(err, rcv.ErrConflict) {
			return
		}
	}
}

// unconfigured fails every delivery permanently.
type unconfigured struct{ ch policy.Channel }

func (u unconfigured) Send(context.Context, Message) error {
	return fmt.Errorf("%w: no %s channel is configured (manual action needed)", ErrUndeliverable, u.ch)
}

// OutboxKey is the at-most-once key of (invoice, stage, channel).
func OutboxKey(cid, id int64, stage string, ch policy.Channel) string {
	return fmt.Sprintf("%d.%d.%s.%s", cid, id, stage, ch)
}

// deliver sends one message on a channel for the items, with the outbox
// protocol, and records the outcome on each case.
func (e *Engine) deliver(ctx context.Context, p *policy.Policy, ch policy.Channel, items []due, now time.Time, o runOpts) (int, error) {
	sender, ok := e.Senders[ch]
	if !ok {
		// A policy stage on a channel this deployment does not have (e.g. a
		// hand-off without a collection platform): tell ops, do not retry
		// forever; the stage counts as failed and the case moves on.
		sender = unconfigured{ch}
	}
	var keys []string
	for _, g := range items {
		keys = append(keys, OutboxKey(g.c.CompanyID, g.c.InvoiceID, g.stage.Name, ch))
	}
	sum := sha256.Sum256([]byte(strings.Join(keys, "|")))
	msgID := "dunning-" + hex.EncodeToString(sum[:12])
	var go_ []due
	var goKeys []string
	for i, g := range items {
		prev, err := e.Outbox.Begin(ctx, keys[i], OutboxRecord{State: OutboxPending, MessageID: msgID, At: now})
		if err == nil {
			go_ = append(go_, g)
			goKeys = append(goKeys, keys[i])
			continue
		}
		if !errors.Is(err, rcv.ErrConflict) {
			return 0, err
		}
		if prev.State == OutboxPending {
			// A crash between send and record: possibly sent. Never re-send
			// silently; tell ops.
			e.attention(ctx, g.c, fmt.Sprintf("possibly sent: %s by %s at %s (message %s)", g.stage.Name, ch, prev.At.UTC().Format(time.RFC3339), prev.MessageID))
		}
	}
	if len(go_) == 0 {
		return 0, nil
	}
	msg := e.message(p, ch, go_, now)
	msg.MessageID = msgID
	err := sender.Send(ctx, msg)
	state, errText := OutboxSent, ""
	switch {
	case err == nil:
	case errors.Is(err, ErrUndeliverable):
		state, errText = OutboxFailed, err.Error()
	default:
		// Nothing delivered: allow a later retry, and retry the timer.
		for _, k := range goKeys {
			_ = e.Outbox.Complete(ctx, k, OutboxRecord{State: OutboxRetry, MessageID: msgID, At: now, Error: err.Error()})
		}
		return 0, fmt.Errorf("dunning: send %s: %w", ch, err)
	}
	for i, g := range go_ {
		if cerr := e.Outbox.Complete(ctx, goKeys[i], OutboxRecord{State: state, MessageID: msgID, At: now, Error: errText}); cerr != nil {
			return 0, cerr
		}
		outcome := "sent"
		if state == OutboxFailed {
			outcome = "failed"
		}
		s := Sent{Stage: g.stage.Name, Channel: ch, At: now, MessageID: msgID, Outcome: outcome, Operator: o.operator}
		nc, uerr := e.update(ctx, g.c.CompanyID, g.c.InvoiceID, func(c *Case, exists bool) (bool, error) {
			if !exists {
				return false, nil
			}
			c.Sent = append(c.Sent, s)
			if state == OutboxFailed {
				c.Attention = append(c.Attention, fmt.Sprintf("delivery failed: %s by %s: %s", g.stage.Name, ch, errText))
			}
			return true, nil
		})
		if uerr != nil {
			return 0, uerr
		}
		_ = e.Audit.Append(ctx, g.c.CompanyID, g.c.InvoiceID, AuditEntry{At: now, Action: "reminder_" + outcome, Stage: g.stage.Name, Channel: string(ch), Operator: o.operator, Reason: o.reason})
		typ := "dunning.reminder_sent"
		switch {
		case state == OutboxFailed:
			typ = "dunning.delivery_failed"
		case g.stage.Escalate:
			typ = "dunning.escalated"
		}
		detail := &OutcomeDelivery{Stage: g.stage.Name, Channel: string(ch), MessageID: msgID, InvoicesInMessage: len(go_), Error: errText}
		if typ == "dunning.escalated" {
			dossier := msg
			detail.Dossier = &dossier
		}
		cs := g.c
		if nc != nil {
			cs = nc
		}
		if perr := e.Outcomes.Publish(ctx, Outcome{Type: typ, CompanyID: g.c.CompanyID, InvoiceID: g.c.InvoiceID, At: now, Case: *cs,
			Key: goKeys[i], Delivery: detail}); perr != nil {
			return 0, perr
		}
	}
	if state == OutboxFailed {
		return 0, nil
	}
	return 1, nil
}

func (e *Engine) attention(ctx context.Context, c *Case, note string) {
	_, _ = e.update(ctx, c.CompanyID, c.InvoiceID, func(x *Case, exists bool) (bool, error) {
		if !exists || slices.Contains(x.Attention, note) {
			return false, nil
		}
		x.Attention = append(x.Attention, note)
		return true, nil
	})
	_ = e.Audit.Append(ctx, c.CompanyID, c.InvoiceID, AuditEntry{At: e.now(), Action: "attention", Reason: note})
	e.log().Warn("case needs attention", "company_id", c.CompanyID, "invoice_id", c.InvoiceID, "note", note)
}

// message renders the data of a message (templates are the channel's job).
func (e *Engine) message(p *policy.Policy, ch policy.Channel, items []due, now time.Time) Message {
	today := rcv.DateIn(now, rcv.Rome)
	first := items[0].c
	lang := first.Invoice.Client.Language
	if lang != "it" && lang != "en" {
		lang = p.Language
	}
	m := Message{CompanyID: first.CompanyID, Client: first.Invoice.Client, Channel: ch, Language: lang, Platform: p.Platform, Date: today}
	top := -1 << 31
	for _, g := range items {
		it := Item{Invoice: g.c.Invoice, Stage: g.stage, DaysOverdue: g.c.Invoice.DaysOverdue(today)}
		if g.stage.Interest && e.Rates != nil {
			total := decimal.Zero
			for _, in := range g.c.Invoice.Installments {
				if in.Open() {
					if r, err := e.Rates.Compute(in.Amount, in.DueDate, today); err == nil {
						total = total.Add(r.Interest)
					}
				}
			}
			it.Interest, it.Compensation = total, interest.Compensation
		}
		m.Items = append(m.Items, it)
		m.History = append(m.History, g.c.Sent...)
		if g.stage.OffsetDays > top {
			top, m.Template, m.Stage = g.stage.OffsetDays, g.stage.Template, g.stage.Name
		}
	}
	return m
}
