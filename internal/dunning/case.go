package dunning

import (
	"time"

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
func Apply(c *Case, typ rcv.EventType, inv rcv.Invoice, now time.Time, p *policy.Policy) (*Case, *Transition) {
	if inv.Kind != rcv.KindInvoice {
		return c, nil
	}
	if c == nil {
		if inv.FullyPaid() || !inv.AmountDue().IsPositive() || typ == rcv.InvoiceDeleted || excluded(&inv, p) {
			return nil, nil
		}
		nc := &Case{CompanyID: inv.CompanyID, InvoiceID: inv.ID, Invoice: inv, State: Active, Opened: now, Updated: now}
		nc.Stage = firstStage(nc, p, rcv.DateIn(now, rcv.Rome))
		return nc, &Transition{From: "", To: Active, Reason: "opened"}
	}
	next := *c
	next.Invoice, next.Updated = inv, now
	switch {
	case typ == rcv.InvoiceDeleted:
		return closeCase(&next, ReasonDeleted)
	case inv.FullyPaid() || !inv.AmountDue().IsPositive():
		return closeCase(&next, ReasonPaid)
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

// firstStage skips the stages whose day has already passed when a case is
// opened late (first sync of an old ledger): the most recent past stage is
// kept so it runs now, earlier ones are not sent retroactively.
func firstStage(c *Case, p *policy.Policy, today rcv.Date) int {
	anchor := c.Anchor()
	k := 0
	for i, s := range p.Stages {
		if !anchor.AddDays(s.OffsetDays).After(today) {
			k = i
		}
	}
	return k
}

// Decision is what Decide concludes for a case at an instant.
type Decision struct {
	// Send is the stage due now (nil: nothing to send now), at Index.
	Send  *policy.Stage
	Index int
	// Skip lists stages passed over because their conditions fail.
	Skip []string
	// WakeAt is when to look at the case again (zero: never, it is done).
	WakeAt time.Time
	// Resume is set when a pause or promise expired.
	Resume bool
}

// StageTime is when a stage is due: its day (anchor + offset), moved to the
// next business day, at the start of the send window.
func StageTime(anchor rcv.Date, s *policy.Stage, cal *calendar.Calendar) time.Time {
	day := cal.NextBusinessDay(anchor.AddDays(s.OffsetDays))
	return cal.SendTime(day.In(rcv.Rome))
}

// Decide returns what is due for c at now under policy p.
func Decide(now time.Time, c *Case, p *policy.Policy, cal *calendar.Calendar) Decision {
	var d Decision
	today := rcv.DateIn(now, rcv.Rome)
	switch c.State {
	case Closed, Escalated, Disputed:
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
	anchor := c.Anchor()
	for i := c.Stage; i < len(p.Stages); i++ {
		s := &p.Stages[i]
		if c.Invoice.AmountDue().LessThan(s.MinAmountDue) || tagExcluded(&c.Invoice, s, p) {
			d.Skip = append(d.Skip, s.Name)
			continue
		}
		at := StageTime(anchor, s, cal)
		if now.Before(at) {
			d.WakeAt = at
			return d
		}
		if !cal.InWindow(now) {
			d.WakeAt = cal.SendTime(now)
			return d
		}
		d.Send, d.Index = s, i
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
