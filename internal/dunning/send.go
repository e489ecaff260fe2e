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
	if d.Blocked != "" {
		e.attention(ctx, &c, d.Blocked)
	}
	if d.Send == nil {
		return 0, e.setWake(ctx, &c, d.WakeAt)
	}
	if d.NeedsApproval {
		return 0, e.requestApproval(ctx, &c, d)
	}
	mode, err := e.mode(ctx, cid)
	if err != nil {
		return 0, err
	}
	if mode == policy.ModeShadow && o.force == nil {
		return 0, e.shadow(ctx, &c, d)
	}
	// Minimum gap between two contacts to the same client.
	ckey := ClientKey(&c.Invoice)
	cr, _, err := e.Clients.Get(ctx, cid, ckey)
	if err != nil {
		return 0, err
	}
	// An operator's explicit decision (remind now, an approval) sends now:
	// the quiet period and the minimum gap pace what the engine does by
	// itself.
	manual := o.force != nil || o.operator != ""
	if !manual && now.Before(cr.QuietUntil) {
		// The client's events are still arriving: wait until they have
		// been quiet, so that one message lists every invoice due.
		return 0, e.setWake(ctx, &c, cr.QuietUntil)
	}
	if !manual && p.MinGapDays > 0 && !cr.LastContact.IsZero() {
		next := cr.LastContact.Add(time.Duration(p.MinGapDays) * 24 * time.Hour)
		if now.Before(next) {
			return 0, e.setWake(ctx, &c, e.Calendar.SendTime(next))
		}
	}
	group := []due{{c: &c, stage: *d.Send, idx: d.Index}}
	if !manual { // an operator's decision is about this case only
		for _, sid := range cr.Invoices {
			if sid == id {
				continue
			}
			sc, _, err := e.Cases.Get(ctx, cid, sid)
			if err != nil || sc.InvoiceID == 0 {
				continue
			}
			if sd := Decide(now, &sc, p, e.Calendar); sd.Send != nil && !sd.NeedsApproval {
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
	failed := map[int64]string{} // invoice → why its hand-off was not delivered
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
		n, err := e.deliver(ctx, p, ch, items, now, o, failed)
		sent += n
		if err != nil {
			return sent, err
		}
	}
	// Advance every case of the group past its stage and plan its next
	// wake. A hand-off that was not delivered does not escalate: the stage
	// stays due (retried the next business day) with an ops task.
	for _, g := range group {
		why, notHanded := failed[g.c.InvoiceID]
		notHanded = notHanded && g.stage.Escalate
		nc, err := e.update(ctx, cid, g.c.InvoiceID, func(c *Case, exists bool) (bool, error) {
			if !exists || c.Stage > g.idx {
				return false, nil
			}
			c.Invoice = g.c.Invoice
			if notHanded {
				c.WakeAt = e.Calendar.SendTime(e.Calendar.NextBusinessDay(rcv.DateIn(now, rcv.Rome).AddDays(1)).In(rcv.Rome))
				return true, nil
			}
			c.Stage = g.idx + 1
			c.Approved = slices.DeleteFunc(c.Approved, func(s string) bool { return s == g.stage.Name })
			if c.Awaiting != nil && c.Awaiting.Stage == g.stage.Name {
				c.Awaiting = nil
			}
			if g.stage.Escalate && c.State == Active {
				c.State = Escalated
			}
			c.WakeAt = Decide(now, c, p, e.Calendar).WakeAt
			return true, nil
		})
		if notHanded {
			e.attention(ctx, g.c, fmt.Sprintf("hand-off to %s not delivered (%s): the case is not escalated; it is retried every business day", p.Platform, why))
		}
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
// protocol, and records the outcome on each case: in its Sent list and
// timeline, and as a dunning.* event. A delivery an earlier run made but
// did not record (a crash between the send and the case update), or one
// it left possibly sent, is recorded and published now, once. failed
// collects the invoices whose delivery failed, with why.
func (e *Engine) deliver(ctx context.Context, p *policy.Policy, ch policy.Channel, items []due, now time.Time, o runOpts, failed map[int64]string) (int, error) {
	sender, ok := e.Senders[ch]
	if !ok {
		// A policy stage on a channel this deployment does not have (e.g. a
		// hand-off without a collection platform): tell ops, do not retry
		// forever.
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
		// Already attempted. Never re-send; record what happened if the
		// case does not know it yet.
		outcome := map[OutboxState]string{OutboxPending: "possibly_sent", OutboxPossiblySent: "possibly_sent", OutboxSent: "sent", OutboxFailed: "failed"}[prev.State]
		if outcome == "" {
			continue
		}
		if outcome == "possibly_sent" {
			e.attention(ctx, g.c, fmt.Sprintf("possibly sent: %s by %s at %s (message %s): check with the client before sending it again", g.stage.Name, ch, prev.At.UTC().Format(time.RFC3339), prev.MessageID))
		}
		if err := e.record(ctx, g, ch, prev.MessageID, prev.At, outcome, prev.Error, keys[i], 1, nil, o); err != nil {
			return 0, err
		}
	}
	if len(go_) == 0 {
		return 0, nil
	}
	msg := e.message(ctx, p, ch, go_, now)
	msg.MessageID = msgID
	err := sender.Send(ctx, msg)
	state, errText := OutboxSent, ""
	switch {
	case err == nil:
	case errors.Is(err, ErrPossiblySent):
		state, errText = OutboxPossiblySent, err.Error()
	case errors.Is(err, ErrUndeliverable):
		state, errText = OutboxFailed, err.Error()
		if slices.ContainsFunc(go_, func(g due) bool { return g.stage.Escalate }) {
			state = OutboxRetry // a hand-off stays due: retried once a platform takes it
		}
	default:
		// Nothing delivered: allow a later retry, and retry the timer.
		for _, k := range goKeys {
			_ = e.Outbox.Complete(ctx, k, OutboxRecord{State: OutboxRetry, MessageID: msgID, At: now, Error: err.Error()})
		}
		return 0, fmt.Errorf("dunning: send %s: %w", ch, err)
	}
	outcome := map[OutboxState]string{OutboxSent: "sent", OutboxPossiblySent: "possibly_sent", OutboxFailed: "failed", OutboxRetry: "failed"}[state]
	for i, g := range go_ {
		if cerr := e.Outbox.Complete(ctx, goKeys[i], OutboxRecord{State: state, MessageID: msgID, At: now, Error: errText}); cerr != nil {
			return 0, cerr
		}
		if outcome == "failed" {
			failed[g.c.InvoiceID] = errText
		}
		if outcome == "possibly_sent" {
			e.attention(ctx, g.c, fmt.Sprintf("possibly sent: %s by %s at %s (message %s): %s", g.stage.Name, ch, now.UTC().Format(time.RFC3339), msgID, errText))
		}
		if err := e.record(ctx, g, ch, msgID, now, outcome, errText, goKeys[i], len(go_), &msg, o); err != nil {
			return 0, err
		}
	}
	if outcome == "failed" {
		return 0, nil
	}
	return 1, nil
}

// record adds one delivery outcome to a case (unless it is there already),
// its timeline and the event stream (dunning.reminder_sent, escalated or
// delivery_failed; the event id derives from the outbox key, so recording
// again publishes nothing new).
func (e *Engine) record(ctx context.Context, g due, ch policy.Channel, msgID string, at time.Time, outcome, errText, key string, n int, msg *Message, o runOpts) error {
	s := Sent{Stage: g.stage.Name, Channel: ch, At: at, MessageID: msgID, Outcome: outcome, Operator: o.operator}
	if msg != nil {
		switch ch {
		case policy.Email:
			s.To = msg.Client.Email
		case policy.PEC:
			s.To = msg.Client.PEC
		case policy.Webhook:
			s.To = "platform " + msg.Platform
		}
	}
	known := false
	nc, err := e.update(ctx, g.c.CompanyID, g.c.InvoiceID, func(c *Case, exists bool) (bool, error) {
		if !exists {
			return false, nil
		}
		if slices.ContainsFunc(c.Sent, func(x Sent) bool { return x.MessageID == msgID && x.Stage == s.Stage && x.Channel == ch }) {
			known = true
			return false, nil
		}
		c.Sent = append(c.Sent, s)
		if outcome == "failed" {
			c.Attention = append(c.Attention, fmt.Sprintf("delivery failed: %s by %s: %s", g.stage.Name, ch, errText))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if known {
		return nil
	}
	if err := e.Audit.Append(ctx, g.c.CompanyID, g.c.InvoiceID, AuditEntry{At: at, Action: "reminder_" + outcome, Stage: g.stage.Name, Channel: string(ch), Operator: o.operator, Reason: o.reason}); err != nil {
		return err
	}
	typ := "dunning.reminder_sent"
	switch {
	case outcome == "failed":
		typ = "dunning.delivery_failed"
	case g.stage.Escalate && outcome == "sent":
		typ = "dunning.escalated"
	}
	detail := &OutcomeDelivery{Stage: g.stage.Name, Channel: string(ch), MessageID: msgID, InvoicesInMessage: n, Error: errText, PossiblySent: outcome == "possibly_sent"}
	if typ == "dunning.escalated" && msg != nil {
		dossier := *msg
		detail.Dossier = &dossier
	}
	cs := g.c
	if nc != nil {
		cs = nc
	}
	return e.Outcomes.Publish(ctx, Outcome{Type: typ, CompanyID: g.c.CompanyID, InvoiceID: g.c.InvoiceID, At: at, Case: *cs, Key: key, Delivery: detail})
}

func (e *Engine) attention(ctx context.Context, c *Case, note string) {
	nc, err := e.update(ctx, c.CompanyID, c.InvoiceID, func(x *Case, exists bool) (bool, error) {
		if !exists || slices.Contains(x.Attention, note) {
			return false, nil
		}
		x.Attention = append(x.Attention, note)
		return true, nil
	})
	if err != nil || nc == nil {
		return // already noted (or the case is gone)
	}
	_ = e.Audit.Append(ctx, c.CompanyID, c.InvoiceID, AuditEntry{At: e.now(), Action: "attention", Reason: note})
	e.log().Warn("case needs attention", "company_id", c.CompanyID, "invoice_id", c.InvoiceID, "note", note)
}

// message renders the data of a message (templates are the channel's job):
// for each invoice what is demanded on the day (see DemandOn), with the
// interest per late installment from its first late day, and who the
// creditor is.
func (e *Engine) message(ctx context.Context, p *policy.Policy, ch policy.Channel, items []due, now time.Time) Message {
	today := rcv.DateIn(now, rcv.Rome)
	first := items[0].c
	lang := first.Invoice.Client.Language
	if lang != "it" && lang != "en" {
		lang = p.Language
	}
	m := Message{CompanyID: first.CompanyID, Client: first.Invoice.Client, Channel: ch, Language: lang, Platform: p.Platform, Date: today}
	if id := m.Client.ID; id != 0 && e.Contacts != nil {
		if cur, err := e.Contacts(ctx, first.CompanyID, id); err == nil {
			m.Client = m.Client.WithContactsOf(cur)
		} else {
			e.log().Warn("client's current contacts unavailable; using the invoice's", "company_id", first.CompanyID, "client_id", id, "error", err)
		}
	}
	m.Creditor = CreditorFrom(p.Creditor)
	if e.Creditors != nil {
		if c, err := e.Creditors(ctx, first.CompanyID); err == nil {
			m.Creditor = c
		} else {
			e.log().Warn("creditor details from FIC unavailable; using the policy's", "company_id", first.CompanyID, "error", err)
		}
	}
	top := -1 << 31
	for _, g := range items {
		demand := DemandOn(g.c, today, g.stage.OffsetDays < 0, e.Calendar)
		it := Item{Invoice: g.c.Invoice, Stage: g.stage, DaysOverdue: 0, Demand: demand}
		for _, d := range demand.Items {
			it.DaysOverdue = max(it.DaysOverdue, d.DaysLate)
		}
		if g.stage.Interest && e.Rates != nil {
			total := decimal.Zero
			for _, d := range demand.Items {
				if d.LateFrom.IsZero() {
					continue
				}
				r, err := e.Rates.Compute(d.Amount, d.LateFrom.AddDays(-1), today)
				if err != nil {
					continue
				}
				total = total.Add(r.Interest)
				for _, rate := range r.Rates {
					if !slices.ContainsFunc(it.Rates, rate.Equal) {
						it.Rates = append(it.Rates, rate)
					}
				}
				if it.InterestFrom.IsZero() || d.LateFrom.Before(it.InterestFrom) {
					it.InterestFrom = d.LateFrom
				}
			}
			it.Interest, it.Compensation = total, interest.Compensation
		}
		m.Items = append(m.Items, it)
		if p.AttachInvoicePDF && e.InvoicePDF != nil && (ch == policy.Email || ch == policy.PEC) {
			if pdf, err := e.InvoicePDF(ctx, g.c.CompanyID, g.c.InvoiceID); err == nil {
				name := "Fattura " + strings.NewReplacer("/", "-", "\\", "-").Replace(g.c.Invoice.Number) + ".pdf"
				m.Attachments = append(m.Attachments, Attachment{Name: name, ContentType: "application/pdf", Data: pdf})
			} else {
				e.log().Warn("invoice PDF not attached", "company_id", g.c.CompanyID, "invoice_id", g.c.InvoiceID, "error", err)
			}
		}
		for _, s := range g.c.Sent {
			m.History = append(m.History, s)
			if s.Outcome == "sent" && s.Stage != g.stage.Name {
				m.PriorContacts++
			}
		}
		if g.stage.OffsetDays > top {
			top, m.Template, m.Stage = g.stage.OffsetDays, g.stage.Template, g.stage.Name
			m.TermDays, m.Clause1454 = g.stage.TermDays, g.stage.Clause1454
			m.Ordinal = p.Ordinal(g.idx)
		}
	}
	return m
}
