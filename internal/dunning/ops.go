package dunning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// ErrInvalid is a refused operator request (the API answers 4xx).
var ErrInvalid = errors.New("dunning: invalid request")

// RemindNow sends a stage now (default: the case's next stage), optionally
// on one channel. The operator and reason are audited. The freshness check
// and the outbox still apply: a paid invoice is not reminded, and a stage
// already sent on a channel is not sent again.
func (e *Engine) RemindNow(ctx context.Context, cid, id int64, stage string, ch policy.Channel, operator, reason string) (int, error) {
	c, rev, err := e.Cases.Get(ctx, cid, id)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		return 0, ErrNoCase
	}
	if c.State == Closed || c.State == Disputed {
		return 0, fmt.Errorf("%w: the case is %s", ErrInvalid, c.State)
	}
	p := e.Policies.For(cid)
	idx := c.Stage
	if stage != "" {
		if idx = StageIndex(p, stage); idx < 0 {
			return 0, fmt.Errorf("%w: no stage %q in the policy", ErrInvalid, stage)
		}
	}
	if idx >= len(p.Stages) {
		return 0, fmt.Errorf("%w: every stage already ran", ErrInvalid)
	}
	if s := p.Stages[idx]; stage == "" && s.Formal() {
		// A formal notice or a hand-off is never sent by default: the
		// operator names it.
		return 0, fmt.Errorf("%w: the next stage, %s, is a formal step (%s): name it to send it now (-stage %s)", ErrInvalid, s.Name, channelsOf(s), s.Name)
	}
	if ch != "" && !contains(p.Stages[idx].Channels, ch) {
		return 0, fmt.Errorf("%w: stage %s does not use channel %s", ErrInvalid, p.Stages[idx].Name, ch)
	}
	_ = e.Audit.Append(ctx, cid, id, AuditEntry{At: e.now(), Action: "remind_now", Stage: p.Stages[idx].Name, Channel: string(ch), Operator: operator, Reason: reason})
	s := p.Stages[idx]
	return e.run(ctx, cid, id, runOpts{force: &s, forceIdx: idx, channel: ch, operator: operator, reason: reason})
}

func contains(cs []policy.Channel, c policy.Channel) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// SetState pauses (until a date), resumes, disputes, records a promise to
// pay (until a date) or writes the invoice off (Closed). Operator and reason
// are audited.
func (e *Engine) SetState(ctx context.Context, cid, id int64, to State, until rcv.Date, operator, reason string) (*Case, error) {
	today := rcv.DateIn(e.now(), rcv.Rome)
	switch to {
	case Paused, Promised:
		if until.IsZero() || until.Before(today) {
			return nil, fmt.Errorf("%w: %s needs a date from today on", ErrInvalid, to)
		}
	case Active, Disputed:
	case Closed: // written off by an operator
		if reason == "" {
			return nil, fmt.Errorf("%w: a write-off needs a reason", ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("%w: cannot move a case to %q", ErrInvalid, to)
	}
	if operator == "" {
		return nil, fmt.Errorf("%w: operator is required", ErrInvalid)
	}
	var from State
	c, err := e.update(ctx, cid, id, func(c *Case, exists bool) (bool, error) {
		if !exists {
			return false, ErrNoCase
		}
		if c.State == Closed {
			return false, fmt.Errorf("%w: the case is closed (%s)", ErrInvalid, c.ClosedReason)
		}
		from = c.State
		c.State, c.Until = to, until
		if to == Active {
			c.Until = rcv.Date{}
		}
		if to == Closed {
			c.ClosedReason, c.WakeAt = ReasonWrittenOff, time.Time{}
			return true, nil
		}
		d := Decide(e.now(), c, e.Policies.For(cid), e.Calendar)
		c.WakeAt = d.WakeAt
		if d.Send != nil {
			c.WakeAt = e.now()
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if err := e.transition(ctx, c, &Transition{From: from, To: to}, operator, reason); err != nil {
		return nil, err
	}
	return c, e.schedule(ctx, c)
}

// PreviewItem is what would be sent on a date.
type PreviewItem struct {
	CompanyID int64    `json:"company_id"`
	InvoiceID int64    `json:"invoice_id"`
	Number    string   `json:"number"`
	Client    string   `json:"client"`
	Stage     string   `json:"stage"`
	Channels  []string `json:"channels"`
	At        string   `json:"at"`
	AmountDue string   `json:"amount_due"`
}

// Preview lists what would be sent on day (dry run: nothing is sent or
// changed).
func (e *Engine) Preview(ctx context.Context, cid int64, day rcv.Date) ([]PreviewItem, error) {
	cases, err := e.Cases.List(ctx, cid)
	if err != nil {
		return nil, err
	}
	var out []PreviewItem
	// A stage already due goes out at the next send instant from now, and
	// only then: not on every later day of the preview.
	next := rcv.DateIn(e.Calendar.SendTime(e.now().In(rcv.Rome)), rcv.Rome)
	for i := range cases {
		c := &cases[i]
		p := e.Policies.For(c.CompanyID)
		// The first send instant of that day.
		at := e.Calendar.SendTime(day.In(rcv.Rome))
		if rcv.DateIn(at, rcv.Rome) != day {
			continue // not a business day
		}
		d := Decide(e.Calendar.LastSendTime(day), c, p, e.Calendar)
		if d.Send == nil {
			continue
		}
		when := StageTime(c, d.Send, e.Calendar)
		if rcv.DateIn(when, rcv.Rome).Before(day) {
			if day != next {
				continue // due earlier: it will have gone out by then
			}
			when = at
		}
		var chs []string
		for _, ch := range d.Send.Channels {
			chs = append(chs, string(ch))
		}
		out = append(out, PreviewItem{CompanyID: c.CompanyID, InvoiceID: c.InvoiceID, Number: c.Invoice.Number, Client: c.Invoice.Client.Name,
			Stage: d.Send.Name, Channels: chs, At: when.UTC().Format(time.RFC3339), AmountDue: c.Invoice.AmountDue().StringFixed(2)})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Client < out[j].Client || out[i].Client == out[j].Client && out[i].InvoiceID < out[j].InvoiceID
	})
	return out, nil
}

// Aging is the receivables aging of a company.
type Aging struct {
	CompanyID int64             `json:"company_id"`
	Buckets   map[string]string `json:"buckets"` // "current", "0-30", "31-60", "61-90", "90+"
	Open      string            `json:"open"`
	Invoices  int               `json:"invoices"` // invoices with something open
	// DSO is days sales outstanding over the last 90 days: open
	// receivables / invoiced in the period (less credit notes) * 90.
	DSO float64 `json:"dso"`
	// Source says what was counted: "ledger" (every invoice FIC has) or
	// "cases" (only the invoices that had a case: no ledger configured).
	Source string `json:"source"`
}

// AgingReport computes the aging on day of every invoice of the company
// (from the Ledger; without one, of its cases), with lateness counted from
// the first late day (a due date on a holiday moves to the next working
// day) and credit notes off what is open.
func (e *Engine) AgingReport(ctx context.Context, cid int64, day rcv.Date) (Aging, error) {
	var docs []rcv.Invoice
	credits := map[int64]decimal.Decimal{} // invoice → credit notes applied by dunning
	source := "ledger"
	if e.Ledger != nil {
		var err error
		if docs, err = e.Ledger.Documents(ctx, cid); err != nil {
			return Aging{}, err
		}
	} else {
		source = "cases"
		cases, err := e.Cases.List(ctx, cid)
		if err != nil {
			return Aging{}, err
		}
		for _, c := range cases {
			if c.State != Closed {
				docs = append(docs, c.Invoice)
			}
			for _, cr := range c.Credits {
				credits[c.InvoiceID] = credits[c.InvoiceID].Add(cr.Amount)
			}
		}
	}
	sums := map[string]decimal.Decimal{}
	open, invoiced := decimal.Zero, decimal.Zero
	n := 0
	for _, d := range docs {
		inPeriod := !d.Date.Before(day.AddDays(-90)) && !d.Date.After(day)
		if d.Kind == rcv.KindCreditNote {
			if inPeriod {
				invoiced = invoiced.Sub(d.Payable())
			}
			continue
		}
		if inPeriod {
			invoiced = invoiced.Add(d.Payable())
		}
		had := false
		credit := credits[d.ID]
		for _, in := range d.Installments {
			if !in.Open() {
				continue
			}
			amount := in.Amount
			if credit.IsPositive() {
				cut := decimal.Min(credit, amount)
				amount, credit = amount.Sub(cut), credit.Sub(cut)
			}
			if !amount.IsPositive() {
				continue
			}
			days := 0
			if late := LateFrom(in.DueDate, e.Calendar); !day.Before(late) {
				days = day.Sub(late) + 1
			}
			b := "current"
			switch {
			case days > 90:
				b = "90+"
			case days > 60:
				b = "61-90"
			case days > 30:
				b = "31-60"
			case days > 0:
				b = "0-30"
			}
			sums[b] = sums[b].Add(amount)
			open = open.Add(amount)
			had = true
		}
		if had {
			n++
		}
	}
	a := Aging{CompanyID: cid, Buckets: map[string]string{}, Open: open.StringFixed(2), Invoices: n, Source: source}
	for _, b := range []string{"current", "0-30", "31-60", "61-90", "90+"} {
		a.Buckets[b] = sums[b].StringFixed(2)
	}
	if invoiced.IsPositive() {
		a.DSO, _ = open.Div(invoiced).Mul(decimal.NewFromInt(90)).Round(1).Float64()
	}
	return a, nil
}

func channelsOf(s policy.Stage) string {
	var out []string
	for _, c := range s.Channels {
		out = append(out, string(c))
	}
	return strings.Join(out, ", ")
}

// Draft builds the message a stage of a case would send on a channel
// today, without sending or recording anything: what the approval queue
// shows before a person approves a formal notice. The stage defaults to
// the one waiting for approval, else the next one; the channel to the
// stage's first.
func (e *Engine) Draft(ctx context.Context, cid, id int64, stage string, ch policy.Channel) (Message, error) {
	c, rev, err := e.Cases.Get(ctx, cid, id)
	if err != nil {
		return Message{}, err
	}
	if rev == 0 {
		return Message{}, ErrNoCase
	}
	p := e.Policies.For(cid)
	idx := c.Stage
	if c.Awaiting != nil {
		idx = c.Awaiting.Index
	}
	if stage != "" {
		if idx = StageIndex(p, stage); idx < 0 {
			return Message{}, fmt.Errorf("%w: no stage %q in the policy", ErrInvalid, stage)
		}
	}
	if idx >= len(p.Stages) {
		return Message{}, fmt.Errorf("%w: every stage already ran", ErrInvalid)
	}
	s := p.Stages[idx]
	if ch == "" && len(s.Channels) > 0 {
		ch = s.Channels[0]
	}
	np := *p
	np.AttachInvoicePDF = false // a draft shown on screen downloads no PDF from FIC
	m := e.message(ctx, &np, ch, []due{{c: &c, stage: s, idx: idx}}, e.now())
	m.MessageID = "draft"
	return m, nil
}

// AddNote appends an operator's note to a case's timeline.
func (e *Engine) AddNote(ctx context.Context, cid, id int64, operator, note string) error {
	if operator == "" || note == "" {
		return fmt.Errorf("%w: a note needs an operator and a text", ErrInvalid)
	}
	if _, rev, err := e.Cases.Get(ctx, cid, id); err != nil {
		return err
	} else if rev == 0 {
		return ErrNoCase
	}
	return e.Audit.Append(ctx, cid, id, AuditEntry{At: e.now(), Action: "note", Operator: operator, Reason: note})
}

// Assign makes an operator follow a case ("" unassigns), audited.
func (e *Engine) Assign(ctx context.Context, cid, id int64, assignee, operator string) (*Case, error) {
	c, err := e.update(ctx, cid, id, func(c *Case, exists bool) (bool, error) {
		if !exists {
			return false, ErrNoCase
		}
		c.Assignee = assignee
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return c, e.Audit.Append(ctx, cid, id, AuditEntry{At: e.now(), Action: "assigned", Operator: operator, Reason: assignee})
}

// Resolve removes an item of a case's attention list (a possibly-sent or a
// failed delivery that a person checked), with what they found, audited.
func (e *Engine) Resolve(ctx context.Context, cid, id int64, item, operator, outcome string) (*Case, error) {
	if operator == "" || outcome == "" {
		return nil, fmt.Errorf("%w: say what was found", ErrInvalid)
	}
	c, err := e.update(ctx, cid, id, func(c *Case, exists bool) (bool, error) {
		if !exists {
			return false, ErrNoCase
		}
		i := slices.Index(c.Attention, item)
		if i < 0 {
			return false, fmt.Errorf("%w: that item is no longer open", ErrInvalid)
		}
		c.Attention = slices.Delete(c.Attention, i, i+1)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return c, e.Audit.Append(ctx, cid, id, AuditEntry{At: e.now(), Action: "resolved", Operator: operator, Reason: item + " — " + outcome})
}
