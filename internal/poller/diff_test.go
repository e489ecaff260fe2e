package poller_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

func inst(id int64, due, amount string, status rcv.InstallmentStatus, paid string) rcv.Installment {
	i := rcv.Installment{ID: id, DueDate: rcv.MustDate(due), Amount: decimal.RequireFromString(amount), Status: status}
	if paid != "" {
		i.PaidDate = rcv.MustDate(paid)
	}
	return i
}

func invoice(insts ...rcv.Installment) *rcv.Invoice {
	return &rcv.Invoice{CompanyID: 1, ID: 100, Kind: rcv.KindInvoice, Number: "7/A", Date: rcv.MustDate("2026-10-01"),
		Currency: "EUR", Gross: decimal.RequireFromString("1220"), Net: decimal.RequireFromString("1000"),
		Client: rcv.Client{ID: 9, Name: "Rossi S.r.l.", VATNumber: "01234567890"}, Installments: insts}
}

// rome returns an instant in Europe/Rome.
func rome(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, rcv.Rome)
	if err != nil {
		panic(err)
	}
	return t
}

func types(cs []rcv.Change) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, string(c.Type))
	}
	return out
}

func TestDiff(t *testing.T) {
	open := invoice(inst(1, "2026-11-30", "610", rcv.NotPaid, ""), inst(2, "2026-12-31", "610", rcv.NotPaid, ""))
	now := rome("2026-11-20 10:00")
	snap := func(inv *rcv.Invoice, notified ...string) *rcv.Snapshot {
		return &rcv.Snapshot{Invoice: *inv, Notified: notified}
	}
	mod := func(f func(*rcv.Invoice)) *rcv.Invoice {
		c := *open
		c.Installments = slices.Clone(open.Installments)
		f(&c)
		return &c
	}
	tests := []struct {
		name string
		prev *rcv.Snapshot
		curr *rcv.Invoice
		now  time.Time
		want []string
	}{
		{"new invoice", nil, open, now, []string{"invoice.created"}},
		{"no change", snap(open), open, now, []string{}},
		{"only updated_at changed", snap(open), mod(func(i *rcv.Invoice) { i.UpdatedAt = now }), now, []string{}},
		{"amount changed", snap(open), mod(func(i *rcv.Invoice) { i.Gross = decimal.RequireFromString("1300") }), now, []string{"invoice.updated"}},
		{"due date moved", snap(open), mod(func(i *rcv.Invoice) { i.Installments[1].DueDate = rcv.MustDate("2027-01-31") }), now, []string{"invoice.updated"}},
		{"client changed", snap(open), mod(func(i *rcv.Invoice) { i.Client.Name = "Bianchi S.p.A." }), now, []string{"invoice.updated"}},
		{"one installment paid", snap(open), mod(func(i *rcv.Invoice) {
			i.Installments[0].Status, i.Installments[0].PaidDate = rcv.Paid, rcv.MustDate("2026-11-19")
		}), now, []string{"invoice.partially_paid"}},
		{"partial payment splits an installment: not an update", snap(open), mod(func(i *rcv.Invoice) {
			i.Installments[0].Amount = decimal.RequireFromString("510")
			i.Installments = append(i.Installments, inst(3, "2026-11-30", "100", rcv.Paid, "2026-11-19"))
		}), now, []string{"invoice.partially_paid"}},
		{"all paid", snap(open), mod(func(i *rcv.Invoice) {
			for k := range i.Installments {
				i.Installments[k].Status, i.Installments[k].PaidDate = rcv.Paid, rcv.MustDate("2026-11-19")
			}
		}), now, []string{"invoice.paid"}},
		{"reversed", snap(mod(func(i *rcv.Invoice) {
			i.Installments[0].Status, i.Installments[0].PaidDate = rcv.Paid, rcv.MustDate("2026-11-10")
		})),
			mod(func(i *rcv.Invoice) { i.Installments[0].Status = rcv.Reversed }), now, []string{"invoice.reopened"}},
		{"deleted", snap(open), nil, now, []string{"invoice.deleted"}},
		{"deleted twice", &rcv.Snapshot{Invoice: *open, Deleted: true}, nil, now, []string{}},
		{"never seen, gone", nil, nil, now, []string{}},
		{"due soon: 3 days before, from midnight Rome", snap(open), open, rome("2026-11-27 00:00"), []string{"invoice.due_soon"}},
		{"not yet due soon", snap(open), open, rome("2026-11-26 23:59"), []string{}},
		{"overdue the day after the due date", snap(open, "due_soon:1:2026-11-30"), open, rome("2026-12-01 00:00"), []string{"invoice.overdue"}},
		{"still due on the due date", snap(open, "due_soon:1:2026-11-30"), open, rome("2026-11-30 23:59"), []string{}},
		{"overdue once", snap(open, "due_soon:1:2026-11-30", "overdue:1:2026-11-30"), open, rome("2026-12-02 00:00"), []string{}},
		{"first seen already overdue: created + overdue, no stale due_soon", nil, open, rome("2026-12-05 09:00"), []string{"invoice.created", "invoice.overdue"}},
		{"paid installments are never overdue", nil, mod(func(i *rcv.Invoice) {
			i.Installments[0].Status, i.Installments[0].PaidDate = rcv.Paid, rcv.MustDate("2026-11-29")
		}), rome("2026-12-05 09:00"), []string{"invoice.created"}},
		{"moved due date can be overdue again", snap(open, "due_soon:1:2026-11-30", "overdue:1:2026-11-30"),
			mod(func(i *rcv.Invoice) { i.Installments[0].DueDate = rcv.MustDate("2026-12-01") }), rome("2026-12-03 09:00"),
			[]string{"invoice.updated", "invoice.overdue"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, next := poller.Diff(tc.prev, tc.curr, tc.now, poller.Rules{})
			if !slices.Equal(types(got), tc.want) {
				t.Fatalf("got %v, want %v", types(got), tc.want)
			}
			// Idempotent: diffing the result against the same input again yields nothing.
			if tc.curr != nil {
				again, _ := poller.Diff(&next, tc.curr, tc.now, poller.Rules{})
				if len(again) != 0 {
					t.Errorf("second diff not empty: %v", types(again))
				}
			}
		})
	}
}

// Every occurrence of a transition gets the next sequence number of its
// document, and so its own event id: a payment reversed and paid again, a
// due date moved and moved back, a document deleted and restored are new
// occurrences, never a repeat of the first (issue #12, repro 1).
func TestDiffNumbersOccurrences(t *testing.T) {
	open := invoice(inst(1, "2026-11-30", "610", rcv.NotPaid, ""))
	paid := invoice(inst(1, "2026-11-30", "610", rcv.Paid, "2026-11-29"))
	reversed := invoice(inst(1, "2026-11-30", "610", rcv.Reversed, ""))
	now := rome("2026-11-29 10:00")
	var snap *rcv.Snapshot
	var got []string
	ids := map[string]bool{}
	step := func(curr *rcv.Invoice) {
		t.Helper()
		ch, next := poller.Diff(snap, curr, now, poller.Rules{DueSoonDays: -1})
		for _, c := range ch {
			id := events.TransitionID(c.Invoice.CompanyID, c.Invoice.ID, c.Seq, string(c.Type))
			if ids[id] {
				t.Errorf("%s #%d reuses an id", c.Type, c.Seq)
			}
			ids[id] = true
			got = append(got, fmt.Sprintf("%d:%s", c.Seq, c.Type))
		}
		snap = &next
	}
	step(open)
	step(paid)
	step(reversed)
	step(paid)
	step(nil)  // deleted
	step(open) // restored from the bin
	step(nil)
	want := []string{"1:invoice.created", "2:invoice.paid", "3:invoice.reopened", "4:invoice.paid", "5:invoice.deleted", "6:invoice.created", "7:invoice.deleted"}
	if !slices.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
	if snap.Seq != 7 || !snap.Deleted {
		t.Fatalf("tombstone seq %d deleted %v", snap.Seq, snap.Deleted)
	}
	// The same occurrence diffed twice (a retry) gets the same number.
	base := rcv.Snapshot{Invoice: *open, Seq: 4}
	a, _ := poller.Diff(&base, paid, rome("2026-11-29 10:00"), poller.Rules{})
	b, _ := poller.Diff(&base, paid, rome("2026-11-29 18:00"), poller.Rules{})
	if len(a) != 1 || a[0].Seq != 5 || b[0].Seq != 5 {
		t.Fatalf("retry numbered %v vs %v", a, b)
	}
}

// A due date moved D -> D+30 -> D after the installment was overdue: the
// second overdue is a new occurrence with its own number.
func TestDiffOverdueAgainAfterDueDateMovedBack(t *testing.T) {
	d := invoice(inst(1, "2026-11-10", "610", rcv.NotPaid, ""))
	later := invoice(inst(1, "2026-12-10", "610", rcv.NotPaid, ""))
	now := rome("2026-11-20 10:00")
	r := poller.Rules{DueSoonDays: -1}
	c1, s1 := poller.Diff(nil, d, now, r)
	c2, s2 := poller.Diff(&s1, later, now, r)
	c3, _ := poller.Diff(&s2, d, now, r)
	all := slices.Concat(c1, c2, c3)
	var got []string
	for _, c := range all {
		got = append(got, fmt.Sprintf("%d:%s", c.Seq, c.Type))
	}
	want := []string{"1:invoice.created", "2:invoice.overdue", "3:invoice.updated", "4:invoice.updated", "5:invoice.overdue"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestNextInstant(t *testing.T) {
	s := &rcv.Snapshot{Invoice: *invoice(inst(1, "2026-11-30", "610", rcv.NotPaid, ""), inst(2, "2026-12-31", "610", rcv.Paid, "2026-11-01"))}
	cases := []struct{ now, want string }{
		{"2026-11-20 10:00", "2026-11-27 00:00"},
		{"2026-11-27 00:00", "2026-12-01 00:00"},
		{"2026-12-01 00:00", ""},
	}
	for _, c := range cases {
		got := poller.NextInstant(s, rome(c.now), poller.Rules{})
		want := time.Time{}
		if c.want != "" {
			want = rome(c.want)
		}
		if !got.Equal(want) {
			t.Errorf("now %s: got %v, want %v", c.now, got, want)
		}
	}
}

func ExampleDiff() {
	prev := &rcv.Snapshot{Invoice: *invoice(inst(1, "2026-11-30", "1220", rcv.NotPaid, ""))}
	curr := invoice(inst(1, "2026-11-30", "1220", rcv.Paid, "2026-11-28"))
	changes, _ := poller.Diff(prev, curr, rome("2026-11-28 15:00"), poller.Rules{})
	for _, c := range changes {
		fmt.Println(c.Type, c.Seq, c.Invoice.AmountDue())
	}
	// Output: invoice.paid 1 0
}
