package poller

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// Rules parameterise the time-based events.
type Rules struct {
	// DueSoonDays: invoice.due_soon fires at the start of this many days
	// before an installment's due date (default 3; negative disables).
	DueSoonDays int
	// OverdueAfterDays: invoice.overdue fires at the start of the day this
	// many days after the due date (default 1: the day after).
	OverdueAfterDays int
	// Location of the business calendar (default Europe/Rome).
	Location *time.Location
}

func (r Rules) withDefaults() Rules {
	if r.DueSoonDays == 0 {
		r.DueSoonDays = 3
	}
	if r.OverdueAfterDays == 0 {
		r.OverdueAfterDays = 1
	}
	if r.Location == nil {
		r.Location = rcv.Rome
	}
	return r
}

// DueSoonAt is the instant invoice.due_soon fires for an installment.
func (r Rules) DueSoonAt(i rcv.Installment) time.Time {
	r = r.withDefaults()
	return i.DueDate.AddDays(-r.DueSoonDays).In(r.Location)
}

// OverdueAt is the instant invoice.overdue fires for an installment.
func (r Rules) OverdueAt(i rcv.Installment) time.Time {
	r = r.withDefaults()
	return i.DueDate.AddDays(r.OverdueAfterDays).In(r.Location)
}

func timeKey(kind string, i rcv.Installment) string {
	return kind + ":" + strconv.FormatInt(i.ID, 10) + ":" + i.DueDate.String()
}

// Diff compares what Incasso last saw of a document (prev, nil if never
// seen) with what FIC returns now (curr, nil if the document is confirmed
// deleted) and returns the transitions to publish and the snapshot to store
// after publishing them. It is pure: no I/O, time is an argument.
//
// Time-based events (due_soon, overdue) whose instant is at or before now
// and that were not announced yet are part of the result, so a scan, a
// webhook fetch and a fired timer all converge on the same events.
func Diff(prev *rcv.Snapshot, curr *rcv.Invoice, now time.Time, r Rules) ([]rcv.Change, rcv.Snapshot) {
	r = r.withDefaults()
	if curr == nil {
		if prev == nil || prev.Deleted {
			if prev == nil {
				return nil, rcv.Snapshot{}
			}
			return nil, *prev
		}
		typ := rcv.InvoiceDeleted
		if prev.Invoice.Kind == rcv.KindCreditNote {
			typ = rcv.CreditNoteDeleted
		}
		next := *prev
		next.Deleted, next.Pending, next.TimerAt = true, nil, time.Time{}
		out := []rcv.Change{{Type: typ, Invoice: prev.Invoice, At: now}}
		next.Seq = number(out, prev.Seq)
		return out, next
	}
	var out []rcv.Change
	next := rcv.Snapshot{Invoice: *curr}
	if prev != nil {
		next.Seq = prev.Seq // a restored document goes on numbering where its tombstone stopped
	}
	isCN := curr.Kind == rcv.KindCreditNote
	switch {
	case prev == nil || prev.Deleted:
		// New, or restored from the bin: a new occurrence of created.
		typ := rcv.InvoiceCreated
		if isCN {
			typ = rcv.CreditNoteCreated
		}
		out = append(out, rcv.Change{Type: typ, Invoice: *curr, At: now})
	default:
		next.Notified, next.TimerAt = prev.Notified, prev.TimerAt
		p := &prev.Invoice
		if invoiceEqual(p, curr) {
			break // the common case of a rescan: nothing but time can change
		}
		if changes := fieldChanges(p, curr, isCN); len(changes) > 0 {
			typ := rcv.InvoiceUpdated
			if isCN {
				typ = rcv.CreditNoteUpdated
			}
			out = append(out, rcv.Change{Type: typ, Invoice: *curr, Changes: changes, At: now})
		}
		if !isCN {
			out = append(out, paymentChanges(p, curr, now)...)
		}
	}
	if !isCN {
		var tc []rcv.Change
		tc, next.Notified = timeChanges(curr, next.Notified, now, r)
		out = append(out, tc...)
	}
	next.Seq = number(out, next.Seq)
	return out, next
}

// number gives changes the sequence numbers after last, in order, and
// returns the last one given.
func number(changes []rcv.Change, last uint64) uint64 {
	for i := range changes {
		last++
		changes[i].Seq = last
	}
	return last
}

// fieldChanges lists the business-relevant differences: amounts, payment
// terms (due dates and amounts per due date, so that FIC splitting an
// installment on a partial payment is not an update), and the client.
// For credit notes, payment status changes count as updates too.
func fieldChanges(p, c *rcv.Invoice, isCN bool) []rcv.FieldChange {
	var ch []rcv.FieldChange
	add := func(f, a, b string) {
		if a != b {
			ch = append(ch, rcv.FieldChange{Field: f, Previous: a, Current: b})
		}
	}
	add("amount_gross", rcv.Money(p.Gross), rcv.Money(c.Gross))
	add("amount_net", rcv.Money(p.Net), rcv.Money(c.Net))
	add("amount_payable", rcv.Money(p.Payable()), rcv.Money(c.Payable()))
	add("payment_terms", terms(p), terms(c))
	add("number", p.Number, c.Number)
	add("date", p.Date.String(), c.Date.String())
	add("client.id", strconv.FormatInt(p.Client.ID, 10), strconv.FormatInt(c.Client.ID, 10))
	add("client.name", p.Client.Name, c.Client.Name)
	add("client.vat_number", p.Client.VATNumber, c.Client.VATNumber)
	add("client.tax_code", p.Client.TaxCode, c.Client.TaxCode)
	add("client.email", p.Client.Email, c.Client.Email)
	add("client.pec", p.Client.PEC, c.Client.PEC)
	add("e_invoice_status", p.EIStatus, c.EIStatus)
	if isCN {
		add("amount_paid", rcv.Money(p.AmountPaid()), rcv.Money(c.AmountPaid()))
	}
	return ch
}

// terms renders the schedule as "due=amount" per due date, summing
// installments that share a due date.
func terms(inv *rcv.Invoice) string {
	m := map[rcv.Date]decimal.Decimal{}
	for _, i := range inv.Installments {
		m[i.DueDate] = m[i.DueDate].Add(i.Amount)
	}
	keys := make([]rcv.Date, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, rcv.Date.Compare)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k.String())
		b.WriteByte('=')
		b.WriteString(rcv.Money(m[k]))
	}
	return b.String()
}

func paymentChanges(p, c *rcv.Invoice, now time.Time) []rcv.Change {
	var out []rcv.Change
	var newlyPaid []rcv.Installment
	for _, ci := range c.Installments {
		if ci.Status != rcv.Paid {
			continue
		}
		if pi, ok := p.Installment(ci.ID); !ok || pi.Status != rcv.Paid {
			newlyPaid = append(newlyPaid, ci)
		}
	}
	for _, pi := range p.Installments {
		if pi.Status != rcv.Paid {
			continue
		}
		if ci, ok := c.Installment(pi.ID); ok && ci.Status != rcv.Paid {
			inst := ci
			out = append(out, rcv.Change{Type: rcv.InvoiceReopened, Invoice: *c, Installment: &inst, At: now})
		}
	}
	if len(newlyPaid) > 0 {
		typ := rcv.InvoicePartiallyPaid
		if c.FullyPaid() {
			typ = rcv.InvoicePaid
		}
		out = append(out, rcv.Change{Type: typ, Invoice: *c, Paid: newlyPaid, At: now})
	}
	return out
}

// timeChanges emits due_soon/overdue for open installments whose instant has
// come and that were not notified, and returns the updated notified keys
// (pruned of installments that no longer exist). When nothing is due it
// returns notified unchanged, without allocating.
func timeChanges(c *rcv.Invoice, notified []string, now time.Time, r Rules) ([]rcv.Change, []string) {
	var out []rcv.Change
	var add []string
	for _, i := range c.Installments {
		if !i.Open() {
			continue
		}
		overdueAt := r.OverdueAt(i)
		if !now.Before(overdueAt) {
			ok, sk := timeKey("overdue", i), timeKey("due_soon", i)
			if !slices.Contains(notified, ok) {
				inst := i
				out = append(out, rcv.Change{Type: rcv.InvoiceOverdue, Invoice: *c, Installment: &inst, At: overdueAt})
				add = append(add, ok)
			}
			if !slices.Contains(notified, sk) { // too late for a courtesy notice: mark it, never send it
				add = append(add, sk)
			}
			continue
		}
		if r.DueSoonDays > 0 {
			if at := r.DueSoonAt(i); !now.Before(at) {
				sk := timeKey("due_soon", i)
				if !slices.Contains(notified, sk) {
					inst := i
					out = append(out, rcv.Change{Type: rcv.InvoiceDueSoon, Invoice: *c, Installment: &inst, At: at})
					add = append(add, sk)
				}
			}
		}
	}
	keep := notified
	if len(notified) > 0 && !allExist(c, notified) {
		keep = nil
		for _, k := range notified {
			if keyExists(c, k) {
				keep = append(keep, k)
			}
		}
	}
	if len(add) == 0 {
		return out, keep
	}
	merged := append(slices.Clone(keep), add...)
	slices.Sort(merged)
	return out, slices.Compact(merged)
}

func allExist(c *rcv.Invoice, keys []string) bool {
	for _, k := range keys {
		if !keyExists(c, k) {
			return false
		}
	}
	return true
}

// keyExists reports whether a notified key still names an installment and
// due date of the invoice.
func keyExists(c *rcv.Invoice, k string) bool {
	for _, i := range c.Installments {
		if k == timeKey("overdue", i) || k == timeKey("due_soon", i) {
			return true
		}
	}
	return false
}

// invoiceEqual compares what Diff cares about, without allocating.
func invoiceEqual(x, y *rcv.Invoice) bool {
	if x.Number != y.Number || x.Date != y.Date || !x.Gross.Equal(y.Gross) || !x.Net.Equal(y.Net) ||
		x.Client != y.Client || x.EIStatus != y.EIStatus || len(x.Installments) != len(y.Installments) ||
		x.Kind != y.Kind || x.SplitPayment != y.SplitPayment || x.Subject != y.Subject || x.RefNumber != y.RefNumber ||
		x.RefDate != y.RefDate || x.Currency != y.Currency || x.Numeration != y.Numeration {
		return false
	}
	for i := range x.Installments {
		p, q := x.Installments[i], y.Installments[i]
		if p.ID != q.ID || p.DueDate != q.DueDate || !p.Amount.Equal(q.Amount) || p.Status != q.Status || p.PaidDate != q.PaidDate {
			return false
		}
	}
	return true
}

// NextInstant returns the earliest future instant at which a time-based
// event of the snapshot becomes due, or zero if none will.
func NextInstant(s *rcv.Snapshot, now time.Time, r Rules) time.Time {
	r = r.withDefaults()
	if s.Deleted || s.Invoice.Kind != rcv.KindInvoice {
		return time.Time{}
	}
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, i := range s.Invoice.Installments {
		if !i.Open() {
			continue
		}
		if r.DueSoonDays > 0 {
			consider(r.DueSoonAt(i))
		}
		consider(r.OverdueAt(i))
	}
	return next
}

// Equal reports whether two snapshots hold the same state, ignoring
// FIC's updated_at (which changes on edits Incasso does not care about).
func Equal(a, b *rcv.Snapshot) bool {
	return a.Deleted == b.Deleted && a.Seq == b.Seq && len(a.Pending) == len(b.Pending) && slices.Equal(a.Notified, b.Notified) && a.TimerAt.Equal(b.TimerAt) &&
		a.Invoice.CompanyID == b.Invoice.CompanyID && a.Invoice.ID == b.Invoice.ID && invoiceEqual(&a.Invoice, &b.Invoice)
}
