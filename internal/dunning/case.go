package dunning

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// State of a case.
type State string

// Case states.
const (
	Active    State = "active"    // stages run as they come due
	Escalated State = "escalated" // handed to a collection platform
	Paused    State = "paused"    // by an operator, until a date
	Disputed  State = "disputed"  // the client contests the invoice: nothing is sent
	Promised  State = "promised"  // promise to pay until a date; resumes by itself after
	Held      State = "held"      // not chased until ops look (e-invoice discarded or rejected, payment reversed)
	Closed    State = "closed"    // paid, deleted, credited or written off
)

// Close reasons.
const (
	ReasonPaid       = "paid"
	ReasonDeleted    = "deleted"
	ReasonCredited   = "credited"
	ReasonWrittenOff = "written_off"
)

// Sent records one delivery of a stage on a channel.
type Sent struct {
	Stage     string         `json:"stage"`
	Channel   policy.Channel `json:"channel"`
	At        time.Time      `json:"at"`
	MessageID string         `json:"message_id,omitempty"`
	Outcome   string         `json:"outcome"` // sent, failed, possibly_sent
	Operator  string         `json:"operator,omitempty"`
	// To is where it went: the e-mail or PEC address, or the platform.
	To string `json:"to,omitempty"`
}

// Approval is a stage waiting for an operator in the approval queue.
type Approval struct {
	Stage  string    `json:"stage"`
	Index  int       `json:"index"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"` // "formal step", "catch-up"
}

// Credit is a credit note that reduces what an invoice's case demands.
type Credit struct {
	ID     int64           `json:"id"`
	Number string          `json:"number"`
	Amount decimal.Decimal `json:"amount"`
}

// Case is the dunning workflow of one invoice.
type Case struct {
	CompanyID    int64       `json:"company_id"`
	InvoiceID    int64       `json:"invoice_id"`
	Invoice      rcv.Invoice `json:"invoice"`
	State        State       `json:"state"`
	Stage        int         `json:"stage"` // index of the next stage to run
	Until        rcv.Date    `json:"until,omitzero"`
	ClosedReason string      `json:"closed_reason,omitempty"`
	Sent         []Sent      `json:"sent,omitempty"`
	WakeAt       time.Time   `json:"wake_at,omitzero"`
	Attention    []string    `json:"attention,omitempty"` // ops tasks: possibly sent, bounced
	Opened       time.Time   `json:"opened"`
	Updated      time.Time   `json:"updated"`
	// CatchUp: the case was opened after the day of a stage it would have
	// run (a backlog found by the first sync).
	CatchUp bool `json:"catch_up,omitempty"`
	// Awaiting is the stage in the approval queue, if any.
	Awaiting *Approval `json:"awaiting_approval,omitempty"`
	// Approved are the stages an operator approved (not yet sent).
	Approved []string `json:"approved,omitempty"`
	// HeldFor says why a held case holds.
	HeldFor string `json:"held_for,omitempty"`
	// Credits are the credit notes against the invoice.
	Credits []Credit `json:"credits,omitempty"`
	// Shadow lists the stages computed while the company was in shadow
	// mode (previewed, not sent).
	Shadow []string `json:"shadow,omitempty"`
	// Assignee is the operator who follows the case (console, bulk assign).
	Assignee string `json:"assignee,omitempty"`
}

// Delivered returns the last successful delivery of any of the stages (all
// stages when none is named) and whether there is one.
func (c *Case) Delivered(stages ...string) (Sent, bool) {
	var last Sent
	found := false
	for _, s := range c.Sent {
		if s.Outcome != "sent" || (len(stages) > 0 && !slices.Contains(stages, s.Stage)) {
			continue
		}
		if !found || s.At.After(last.At) {
			last, found = s, true
		}
	}
	return last, found
}

// LateFrom is the first day an installment due on due is late: a due date
// on a Sunday or a holiday moves to the next working day (art. 1187 and
// 2963 c.c.), so a 01/11 due date is late from 03/11.
func LateFrom(due rcv.Date, cal *calendar.Calendar) rcv.Date {
	return cal.NextBusinessDay(due).AddDays(1)
}

// Demanded is one installment a message asks for.
type Demanded struct {
	Installment rcv.Installment
	Amount      decimal.Decimal // after credits
	LateFrom    rcv.Date        // zero: not late yet (courtesy)
	DaysLate    int
}

// Demand is what a case asks for on a day: the installments already due
// (late), less the credit notes against the invoice; installments not due
// yet are listed apart ("a scadere") and never counted. A stage before the
// due date (courtesy) asks for the installments due by its anchor.
type Demand struct {
	Items    []Demanded
	Upcoming []rcv.Installment
	Credited decimal.Decimal // credit notes applied
	Total    decimal.Decimal // sum of Items' amounts
}

// DemandOn computes a case's demand on day today for a stage (courtesy
// when before the due date).
func DemandOn(c *Case, today rcv.Date, courtesy bool, cal *calendar.Calendar) Demand {
	var d Demand
	anchor := c.Anchor()
	openTotal := decimal.Zero
	for _, in := range c.Invoice.Installments {
		if !in.Open() {
			continue
		}
		openTotal = openTotal.Add(in.Amount)
		late := LateFrom(in.DueDate, cal)
		switch {
		case !today.Before(late):
			d.Items = append(d.Items, Demanded{Installment: in, Amount: in.Amount, LateFrom: late, DaysLate: today.Sub(late) + 1})
		case courtesy && !in.DueDate.After(anchor):
			d.Items = append(d.Items, Demanded{Installment: in, Amount: in.Amount})
		default:
			d.Upcoming = append(d.Upcoming, in)
		}
	}
	for _, cr := range c.Credits {
		d.Credited = d.Credited.Add(cr.Amount)
	}
	// Never more than what is open less the credits: the credit reduces
	// the installments not due yet first, then the latest due ones.
	excess := decimal.Zero
	for _, it := range d.Items {
		excess = excess.Add(it.Amount)
	}
	excess = excess.Sub(decimal.Max(openTotal.Sub(d.Credited), decimal.Zero))
	for i := len(d.Items) - 1; i >= 0 && excess.IsPositive(); i-- {
		cut := decimal.Min(excess, d.Items[i].Amount)
		d.Items[i].Amount = d.Items[i].Amount.Sub(cut)
		excess = excess.Sub(cut)
	}
	kept := d.Items[:0]
	for _, it := range d.Items {
		if it.Amount.IsPositive() {
			kept = append(kept, it)
			d.Total = d.Total.Add(it.Amount)
		}
	}
	d.Items = kept
	return d
}

// Outstanding is what the invoice still owes after credit notes.
func (c *Case) Outstanding() decimal.Decimal {
	out := c.Invoice.AmountDue()
	for _, cr := range c.Credits {
		out = out.Sub(cr.Amount)
	}
	return out
}

// Anchor is the due date stages count from: the oldest open installment.
func (c *Case) Anchor() rcv.Date { return c.Invoice.NextDue() }

// ClientKey identifies the client for grouping and contact gaps.
func ClientKey(inv *rcv.Invoice) string {
	switch {
	case inv.Client.ID != 0:
		return "id" + itoa(inv.Client.ID)
	case inv.Client.VATNumber != "":
		return "vat" + inv.Client.VATNumber
	}
	return "doc" + itoa(inv.ID)
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// Transition is what an event did to a case, for the audit trail and the
// dunning.* events.
type Transition struct {
	From, To State
	Reason   string
}

// Apply updates (or opens) a case for a receivables event. c is nil when no
// case exists. It returns the new case (nil: none needed) and the state
// transition, if any.
func Apply(c *Case, typ rcv.EventType, inv rcv.Invoice, now time.Time, p *policy.Policy, cal *calendar.Calendar) (*Case, *Transition) {
	if inv.Kind != rcv.KindInvoice {
		return c, nil
	}
	if c == nil {
		if inv.FullyPaid() || !inv.AmountDue().IsPositive() || typ == rcv.InvoiceDeleted || excluded(&inv, p) {
			return nil, nil
		}
		nc := &Case{CompanyID: inv.CompanyID, InvoiceID: inv.ID, Invoice: inv, State: Active, Opened: now, Updated: now}
		nc.Stage, nc.CatchUp = firstStage(nc, p, rcv.DateIn(now, rcv.Rome), cal)
		if why := holdFor(&inv, nil, p); why != "" {
			nc.State, nc.HeldFor = Held, why
			return nc, &Transition{From: "", To: Held, Reason: why}
		}
		return nc, &Transition{From: "", To: Active, Reason: "opened"}
	}
	next := *c
	next.Invoice, next.Updated = inv, now
	switch {
	case typ == rcv.InvoiceDeleted:
		return closeCase(&next, ReasonDeleted)
	case inv.FullyPaid() || !inv.AmountDue().IsPositive():
		return closeCase(&next, ReasonPaid)
	case c.State == Active:
		if why := holdFor(&inv, &c.Invoice, p); why != "" {
			next.State, next.HeldFor = Held, why
			return &next, &Transition{From: Active, To: Held, Reason: why}
		}
	case c.State == Held && strings.HasPrefix(c.HeldFor, heldEInvoice) && holdFor(&inv, nil, p) == "":
		// The e-invoice was sent again and is no longer discarded.
		next.State, next.HeldFor = Active, ""
		return &next, &Transition{From: Held, To: Active, Reason: "e-invoice status " + inv.EIStatus}
	case c.State == Closed && c.ClosedReason == ReasonPaid:
		// Reopened (a payment reversed): the workflow resumes where it was.
		next.State, next.ClosedReason = Active, ""
		return &next, &Transition{From: Closed, To: Active, Reason: "reopened"}
	case c.State == Closed && c.ClosedReason == ReasonDeleted && typ == rcv.InvoiceCreated:
		// Restored from FIC's bin: a new occurrence of created. The
		// workflow resumes where it was.
		next.State, next.ClosedReason = Active, ""
		return &next, &Transition{From: Closed, To: Active, Reason: "restored"}
	}
	return &next, nil
}

const (
	heldEInvoice = "e-invoice "
	heldReversed = "payment reversed"
)

// holdFor says why an invoice is not to be chased (empty: it is): its
// e-invoice was discarded by SDI or rejected, or (policy reversed: hold) a
// payment of it was reversed since prev.
func holdFor(inv, prev *rcv.Invoice, p *policy.Policy) string {
	if inv.EIStatus != "" && slices.Contains(p.HoldEIStatus, inv.EIStatus) {
		return heldEInvoice + inv.EIStatus
	}
	if p.Reversed == policy.ReversedHold && prev != nil {
		for _, in := range inv.Installments {
			if old, ok := prev.Installment(in.ID); in.Status == rcv.Reversed && ok && old.Status != rcv.Reversed {
				return heldReversed
			}
		}
	}
	return ""
}

func closeCase(c *Case, reason string) (*Case, *Transition) {
	if c.State == Closed {
		return c, nil
	}
	from := c.State
	c.State, c.ClosedReason, c.WakeAt = Closed, reason, time.Time{}
	return c, &Transition{From: from, To: Closed, Reason: reason}
}

func excluded(inv *rcv.Invoice, p *policy.Policy) bool {
	for _, x := range p.ExcludeClients {
		if x == inv.Client.VATNumber || x == itoa(inv.Client.ID) || x == inv.Client.TaxCode {
			return true
		}
	}
	return false
}

// firstStage is where a new case starts. A case opened before its first
// stage's day starts there. One opened late (the first sync of an old
// ledger) never jumps ahead: the stages before the due date (courtesy)
// whose day has passed are skipped, and it starts at the first stage from
// the due date on (the first reminder), progressing by the gaps from
// there; the later stages' own conditions (requires, min_days_after) keep
// a formal notice from being the first contact. It reports whether the
// case is a catch-up (its first stage's day has passed).
func firstStage(c *Case, p *policy.Policy, today rcv.Date, cal *calendar.Calendar) (int, bool) {
	for i := range p.Stages {
		s := &p.Stages[i]
		if !stageDay(c, s, cal).Before(today) || s.OffsetDays >= 0 {
			return i, stageDay(c, s, cal).Before(today)
		}
	}
	return len(p.Stages) - 1, true
}

// stageDay is the day a stage falls on for a case, before the business-day
// move: from the due date for stages before it, from the first late day
// for the others.
func stageDay(c *Case, s *policy.Stage, cal *calendar.Calendar) rcv.Date {
	anchor := c.Anchor()
	if s.OffsetDays < 0 {
		return anchor.AddDays(s.OffsetDays)
	}
	return LateFrom(anchor, cal).AddDays(s.OffsetDays - 1)
}

// Decision is what Decide concludes for a case at an instant.
type Decision struct {
	// Send is the stage due now (nil: nothing to send now), at Index.
	Send  *policy.Stage
	Index int
	// NeedsApproval: Send waits in the approval queue (for Reason).
	NeedsApproval bool
	Reason        string
	// Blocked says why the next stage can never run by itself (a stage it
	// requires was not delivered): an ops task.
	Blocked string
	// Skip lists stages passed over because their conditions fail.
	Skip []string
	// WakeAt is when to look at the case again (zero: never, it is done).
	WakeAt time.Time
	// Resume is set when a pause or promise expired.
	Resume bool
}

// StageTime is when a stage is due for a case: its day (see stageDay),
// moved to the next business day, at the start of the send window.
func StageTime(c *Case, s *policy.Stage, cal *calendar.Calendar) time.Time {
	day := cal.NextBusinessDay(stageDay(c, s, cal))
	return cal.SendTime(day.In(rcv.Rome))
}

// earliest is the first instant a stage may run for a case given what was
// delivered: after a delivery of a stage it requires, min_days_after the
// last delivery, and after the term of the required stage that gives one.
// ok is false when a required stage was never delivered.
func earliest(c *Case, s *policy.Stage, p *policy.Policy, cal *calendar.Calendar) (time.Time, bool) {
	at := StageTime(c, s, cal)
	if len(s.Requires) > 0 {
		if _, ok := c.Delivered(s.Requires...); !ok {
			return at, false
		}
		for _, r := range s.Requires {
			rs := p.Stages[StageIndex(p, r)]
			if sent, ok := c.Delivered(r); ok && rs.TermDays > 0 {
				// The term runs from the delivery; the stage may act the
				// day after it expires.
				day := rcv.DateIn(sent.At, rcv.Rome).AddDays(rs.TermDays + 1)
				at = latest(at, cal.SendTime(cal.NextBusinessDay(day).In(rcv.Rome)))
			}
		}
	}
	if last, ok := c.Delivered(); ok && s.MinDaysAfter > 0 {
		day := rcv.DateIn(last.At, rcv.Rome).AddDays(s.MinDaysAfter)
		at = latest(at, cal.SendTime(cal.NextBusinessDay(day).In(rcv.Rome)))
	}
	return at, true
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Decide returns what is due for c at now under policy p.
func Decide(now time.Time, c *Case, p *policy.Policy, cal *calendar.Calendar) Decision {
	var d Decision
	today := rcv.DateIn(now, rcv.Rome)
	switch c.State {
	case Closed, Escalated, Disputed, Held:
		return d
	case Paused, Promised:
		if !c.Until.IsZero() && today.After(c.Until) {
			d.Resume = true
			break
		}
		if !c.Until.IsZero() {
			d.WakeAt = c.Until.AddDays(1).In(rcv.Rome)
		}
		return d
	}
	for i := c.Stage; i < len(p.Stages); i++ {
		s := &p.Stages[i]
		demand := DemandOn(c, today, s.OffsetDays < 0, cal)
		if demand.Total.LessThan(s.MinAmountDue) || tagExcluded(&c.Invoice, s, p) {
			d.Skip = append(d.Skip, s.Name)
			continue
		}
		at, ok := earliest(c, s, p, cal)
		if !ok {
			d.Blocked = fmt.Sprintf("%s needs a delivered %s first: nothing more is sent by itself", s.Name, strings.Join(s.Requires, " or "))
			return d
		}
		if now.Before(at) {
			d.WakeAt = at
			return d
		}
		if !cal.InWindow(now) {
			d.WakeAt = cal.SendTime(now)
			return d
		}
		d.Send, d.Index = s, i
		if !slices.Contains(c.Approved, s.Name) {
			switch {
			case s.Approval:
				d.NeedsApproval, d.Reason = true, "formal step"
			case c.CatchUp && len(c.Sent) == 0 && p.CatchUp == policy.CatchUpApprove:
				d.NeedsApproval, d.Reason = true, "catch-up: the invoice was already late when the case opened"
			}
		}
		return d
	}
	return d
}

func tagExcluded(inv *rcv.Invoice, s *policy.Stage, p *policy.Policy) bool {
	if len(s.ExcludeTags) == 0 {
		return false
	}
	for _, key := range []string{inv.Client.VATNumber, itoa(inv.Client.ID), inv.Client.TaxCode} {
		for _, t := range p.ClientTags[key] {
			for _, x := range s.ExcludeTags {
				if t == x {
					return true
				}
			}
		}
	}
	return false
}

// StageIndex returns the index of a stage by name (-1 if none).
func StageIndex(p *policy.Policy, name string) int {
	for i, s := range p.Stages {
		if s.Name == name {
			return i
		}
	}
	return -1
}
