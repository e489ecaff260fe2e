package dunning_test

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"
	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/memstore"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// text is the plain-text part of a message as a mail client shows it.
func text(t *testing.T, m mailMsg) (subject, body string) {
	t.Helper()
	r, err := mail.CreateReader(strings.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ = r.Header.Subject()
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h, ok := p.Header.(*mail.InlineHeader); ok {
			if ct, _, _ := h.ContentType(); ct == "text/plain" {
				b, _ := io.ReadAll(p.Body)
				return subject, string(b)
			}
		}
	}
	t.Fatalf("no text part in\n%s", m.Data)
	return
}

// businessClient is a client of the sandbox company billed normally (not a
// public administration: no split payment), writing in Italian.
func (e *env) businessClient(t *testing.T) int64 {
	t.Helper()
	docs, _ := e.sim.Documents(e.cid)
	for _, d := range docs {
		if c := d.Client; c.Type == "company" && c.Language == "it" && c.Email != "" && c.PEC != "" {
			return c.ID
		}
	}
	t.Fatal("no business client in the seed")
	return 0
}

// create makes an invoice in the sandbox and feeds invoice.created.
func (e *env) create(t *testing.T, nd ficsim.NewDocument) rcv.Invoice {
	t.Helper()
	d, err := e.sim.CreateDocument(e.cid, nd)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := e.src.Invoice(context.Background(), e.cid, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.eng.HandleEvent(context.Background(), rcv.InvoiceCreated, inv); err != nil {
		t.Fatal(err)
	}
	return inv
}

func (e *env) caseOf(t *testing.T, id int64) dunning.Case {
	t.Helper()
	c, _, err := e.eng.Cases.Get(context.Background(), e.cid, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A case opened on an invoice already late never jumps ahead (issue #14):
// an invoice 28 days late got a PEC "diffida" claiming earlier reminders as
// first contact, one 45 days late went straight to the collection platform.
// Now both start at the first reminder, held for approval (a backlog found
// by the first sync), then progress by the gaps; the formal notice comes
// only after a delivered reminder, and the hand-off only once the notice's
// term has expired.
func TestLateCaseNeverSkipsAStep(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	client := e.businessClient(t)
	late28 := e.create(t, ficsim.NewDocument{Installments: 1, DueDates: []string{"2026-12-07"}, Date: "2026-11-07", ClientID: client})
	late45 := e.create(t, ficsim.NewDocument{Installments: 1, DueDates: []string{"2026-11-20"}, Date: "2026-10-20", ClientID: client})
	e.wake(t, "2027-01-04 10:00", late28.ID)
	e.wake(t, "2027-01-04 10:00", late45.ID)
	if n, p, h := len(e.mail.all()), len(e.pec.all()), len(e.eng.Senders[policy.Webhook].(*capture).msgs); n+p+h != 0 {
		t.Fatalf("sent on opening: %d e-mails, %d PEC, %d hand-offs", n, p, h)
	}
	q, err := e.eng.Approvals(context.Background(), e.cid)
	if err != nil || len(q) != 2 {
		t.Fatalf("approval queue: %d, %v", len(q), err)
	}
	for _, c := range q {
		if c.Awaiting.Stage != "first_reminder" || !strings.Contains(c.Awaiting.Reason, "catch-up") {
			t.Errorf("invoice %s waits for %+v, want the first reminder as a catch-up", c.Invoice.Number, c.Awaiting)
		}
	}
	e.approve(t, late28.ID, "first_reminder")
	e.approve(t, late45.ID, "first_reminder")
	mails := e.mail.all()
	if len(mails) != 2 || len(e.pec.all()) != 0 {
		t.Fatalf("after approval: %d e-mails, %d PEC", len(mails), len(e.pec.all()))
	}
	for _, m := range mails {
		subject, body := text(t, m)
		if !strings.HasPrefix(subject, "Sollecito di pagamento") || strings.Contains(body, "precedent") || strings.Contains(body, "nuovamente") {
			t.Errorf("first contact claims earlier reminders: %s\n%s", subject, body)
		}
	}
	// Then by the gaps: the second reminders three days on, in one message
	// (no approval: only the first message of a catch-up needs one).
	e.wake(t, "2027-01-07 09:00", late28.ID)
	if n := len(e.mail.all()); n != 2 {
		t.Fatalf("second reminder before the minimum gap: %d e-mails", n)
	}
	e.wake(t, "2027-01-07 10:00", late28.ID)
	e.wake(t, "2027-01-07 10:00", late45.ID)
	if n := len(e.mail.all()); n != 3 {
		t.Fatalf("second reminders: %d e-mails, want 3", n)
	}
	if subject, _ := text(t, e.mail.all()[2]); !strings.Contains(subject, "Secondo sollecito") || !strings.Contains(subject, late28.Number) || !strings.Contains(subject, late45.Number) {
		t.Errorf("second reminder: %s", subject)
	}
	// The formal notice: at least 5 days after the last reminder, and only
	// with an operator's approval.
	e.wake(t, "2027-01-11 09:00", late28.ID)
	if c := e.caseOf(t, late28.ID); c.Awaiting != nil || len(e.pec.all()) != 0 {
		t.Fatalf("formal notice 4 days after a reminder: awaiting %+v, %d PEC", c.Awaiting, len(e.pec.all()))
	}
	e.wake(t, "2027-01-12 09:00", late28.ID)
	e.wake(t, "2027-01-12 09:00", late45.ID)
	e.approve(t, late45.ID, "formal_notice")
	e.approve(t, late28.ID, "formal_notice")
	pecs := e.pec.all()
	if len(pecs) != 2 {
		t.Fatalf("%d PEC, want the two formal notices", len(pecs))
	}
	subject, body := text(t, pecs[0])
	for _, w := range []string{"Diffida ad adempiere", "nonostante i nostri precedenti solleciti", "entro 15 giorni", "continuano a maturare"} {
		if !strings.Contains(subject+body, w) {
			t.Errorf("formal notice lacks %q:\n%s\n%s", w, subject, body)
		}
	}
	// The hand-off: not before the notice's 15 days have run (it was due
	// by the calendar already).
	c := e.caseOf(t, late28.ID)
	notice, _ := c.Delivered("formal_notice")
	if min := rcv.DateIn(notice.At, rcv.Rome).AddDays(16); rcv.DateIn(c.WakeAt, rcv.Rome).Before(min) {
		t.Fatalf("hand-off planned for %v, before the notice's term expires (%s)", c.WakeAt.In(rcv.Rome), min)
	}
}

// Only installments already due are demanded: one due and one next month
// asks for the first, lists the second "a scadere" (issue #14: demanded in
// full).
func TestOnlyDueInstallmentsAreDemanded(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	net, vat := decimal.RequireFromString("800"), int64(22)
	inv := e.create(t, ficsim.NewDocument{AmountNet: &net, VATRate: &vat, DueDates: []string{"2027-01-15", "2027-02-15"}, Date: "2026-12-15", ClientID: e.businessClient(t)})
	e.wake(t, "2027-01-12 09:00", inv.ID) // courtesy: the first installment
	e.wake(t, "2027-01-18 09:00", inv.ID) // first reminder
	mails := e.mail.all()
	if len(mails) != 2 {
		t.Fatalf("%d e-mails", len(mails))
	}
	_, courtesy := text(t, mails[0])
	_, reminder := text(t, mails[1])
	for name, b := range map[string]string{"courtesy": courtesy, "reminder": reminder} {
		if !strings.Contains(b, "€ 488,00") || strings.Contains(b, "976,00") {
			t.Errorf("%s demands more than the installment due:\n%s", name, b)
		}
	}
	if !strings.Contains(reminder, "rata a scadere il 15/02/2027: € 488,00 (non ancora dovuta)") || !strings.Contains(reminder, "Totale scaduto: € 488,00") {
		t.Errorf("reminder:\n%s", reminder)
	}
}

// A credit note against an invoice reduces what is demanded (issue #14: a
// partial credit note of 292,80 € was only an ops note and the reminder
// asked the full 976,00 €).
func TestPartialCreditNoteReducesTheDemand(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	net, vat := decimal.RequireFromString("800"), int64(22)
	inv := e.create(t, ficsim.NewDocument{AmountNet: &net, VATRate: &vat, Installments: 1, DueDates: []string{"2027-01-15"}, Date: "2026-12-15", ClientID: e.businessClient(t)})
	cnNet := decimal.RequireFromString("240")
	cnDoc, err := e.sim.CreateDocument(e.cid, ficsim.NewDocument{Type: "credit_note", InvoiceID: inv.ID, AmountNet: &cnNet, VATRate: &vat})
	if err != nil {
		t.Fatal(err)
	}
	cn, err := e.src.Invoice(context.Background(), e.cid, cnDoc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.eng.HandleEvent(context.Background(), rcv.CreditNoteCreated, cn); err != nil {
		t.Fatal(err)
	}
	e.wake(t, "2027-01-12 09:00", inv.ID)
	e.wake(t, "2027-01-18 09:00", inv.ID)
	mails := e.mail.all()
	if len(mails) != 2 {
		t.Fatalf("%d e-mails", len(mails))
	}
	_, body := text(t, mails[1])
	if !strings.Contains(body, "Totale scaduto: € 683,20") || !strings.Contains(body, "al netto delle note di credito: € 292,80") || strings.Contains(body, "976,00") {
		t.Errorf("reminder after a 292,80 credit note on 976,00:\n%s", body)
	}
}

// A due date on a Sunday or a holiday moves to the next working day for
// lateness, stages and interest (art. 1187 and 2963 c.c.): due 01/11/2026
// (All Saints, a Sunday) is late from 03/11, not 02/11.
func TestHolidayDueDateIsLateFromTheNextWorkingDay(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2026-10-20 10:00"))
	inv := e.create(t, ficsim.NewDocument{Installments: 1, DueDates: []string{"2026-11-01"}, Date: "2026-10-01", ClientID: e.businessClient(t)})
	e.wake(t, "2026-10-29 09:00", inv.ID) // courtesy
	e.wake(t, "2026-11-02 10:00", inv.ID)
	if n := len(e.mail.all()); n != 1 {
		t.Fatalf("on 02/11, the last day to pay: %d e-mails, want only the courtesy notice", n)
	}
	if c := e.caseOf(t, inv.ID); !c.WakeAt.Equal(rome("2026-11-03 09:00")) {
		t.Fatalf("first reminder planned for %v, want 03/11 09:00", c.WakeAt.In(rcv.Rome))
	}
	e.wake(t, "2026-11-03 09:00", inv.ID)
	mails := e.mail.all()
	if len(mails) != 2 {
		t.Fatalf("%d e-mails", len(mails))
	}
	if _, body := text(t, mails[1]); !strings.Contains(body, "rata scaduta il 01/11/2026 (1 giorno di ritardo)") {
		t.Errorf("lateness counted from the due date, not from the next working day:\n%s", body)
	}
	c := e.caseOf(t, inv.ID)
	if d := dunning.DemandOn(&c, rcv.MustDate("2026-11-03"), false, e.eng.Calendar); len(d.Items) != 1 || d.Items[0].LateFrom != rcv.MustDate("2026-11-03") {
		t.Fatalf("demand: %+v", d.Items)
	}
}

// E-invoices SDI discarded (or a public administration rejected) are not
// chased: the case holds, and resumes when FIC shows the e-invoice sent
// again (issue #14).
func TestDiscardedEInvoiceIsNotChased(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(rome("2027-01-04 10:00"))
	inv := e.create(t, ficsim.NewDocument{Installments: 1, DueDates: []string{"2027-01-15"}, Date: "2026-12-15", ClientID: e.businessClient(t)})
	update := func(status string) {
		t.Helper()
		if _, err := e.sim.UpdateDocument(e.cid, inv.ID, ficsim.DocumentUpdate{EIStatus: &status}); err != nil {
			t.Fatal(err)
		}
		cur, _ := e.src.Invoice(context.Background(), e.cid, inv.ID)
		if err := e.eng.HandleEvent(context.Background(), rcv.InvoiceUpdated, cur); err != nil {
			t.Fatal(err)
		}
	}
	update("discarded")
	if c := e.caseOf(t, inv.ID); c.State != dunning.Held || !strings.Contains(c.HeldFor, "discarded") {
		t.Fatalf("case of a discarded e-invoice: %s %q", c.State, c.HeldFor)
	}
	e.wake(t, "2027-01-12 09:00", inv.ID)
	e.wake(t, "2027-01-18 09:00", inv.ID)
	if n := len(e.mail.all()); n != 0 {
		t.Fatalf("%d reminders for a discarded e-invoice", n)
	}
	if !slices.Contains(e.out.types(), "dunning.paused") {
		t.Errorf("outcomes: %v", e.out.types())
	}
	update("sent")
	if c := e.caseOf(t, inv.ID); c.State != dunning.Active {
		t.Fatalf("after the e-invoice was sent again: %s", c.State)
	}
	e.wake(t, "2027-01-18 10:00", inv.ID)
	if n := len(e.mail.all()); n != 1 {
		t.Fatalf("%d reminders once the e-invoice was accepted", n)
	}
}

// What a reversed payment means is a policy setting: owed again (the
// default), or held for ops.
func TestReversedPaymentFollowsThePolicy(t *testing.T) {
	for _, tc := range []struct {
		reversed string
		want     dunning.State
	}{{policy.ReversedOwed, dunning.Active}, {policy.ReversedHold, dunning.Held}} {
		t.Run(tc.reversed, func(t *testing.T) {
			e := newEnv(t)
			pols := policy.Default()
			pols.Default.Reversed = tc.reversed
			e.eng.Policies = pols
			e.clk.Set(rome("2027-01-04 10:00"))
			inv := e.create(t, ficsim.NewDocument{Installments: 1, DueDates: []string{"2027-01-15"}, Date: "2026-12-15", ClientID: e.businessClient(t)})
			zero := 0
			if _, err := e.sim.Pay(e.cid, inv.ID, ficsim.PaymentSpec{}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.sim.Reverse(e.cid, inv.ID, &zero); err != nil {
				t.Fatal(err)
			}
			cur, _ := e.src.Invoice(context.Background(), e.cid, inv.ID)
			if err := e.eng.HandleEvent(context.Background(), rcv.InvoiceUpdated, cur); err != nil {
				t.Fatal(err)
			}
			if c := e.caseOf(t, inv.ID); c.State != tc.want {
				t.Fatalf("reversed: %s, want %s", c.State, tc.want)
			}
		})
	}
}

// In shadow mode everything is computed and previewable and nothing is
// sent; going live sends what is due.
func TestShadowModeSendsNothingUntilLive(t *testing.T) {
	e := newEnv(t)
	e.eng.Modes = &memstore.Modes{}
	ctx := context.Background()
	e.clk.Set(rome("2027-01-04 10:00"))
	if _, err := e.eng.SetMode(ctx, e.cid, policy.ModeShadow, "maria"); err != nil {
		t.Fatal(err)
	}
	inv := e.create(t, ficsim.NewDocument{Installments: 1, DueDates: []string{"2027-01-15"}, Date: "2026-12-15", ClientID: e.businessClient(t)})
	e.wake(t, "2027-01-12 09:00", inv.ID)
	if n := len(e.mail.all()); n != 0 {
		t.Fatalf("%d e-mails in shadow mode", n)
	}
	if p, _ := e.eng.Preview(ctx, e.cid, rcv.MustDate("2027-01-12")); len(p) != 1 || p[0].Stage != "courtesy" {
		t.Fatalf("preview in shadow mode: %+v", p)
	}
	tl, _ := e.eng.Audit.Timeline(ctx, e.cid, inv.ID)
	if !slices.ContainsFunc(tl, func(a dunning.AuditEntry) bool { return a.Action == "shadow" && a.Stage == "courtesy" }) {
		t.Fatalf("timeline: %+v", tl)
	}
	e.clk.Set(rome("2027-01-12 11:00"))
	if _, err := e.eng.SetMode(ctx, e.cid, policy.ModeLive, "maria"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.mail.all()); n != 1 {
		t.Fatalf("%d e-mails after going live", n)
	}
}
