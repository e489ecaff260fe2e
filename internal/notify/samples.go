package notify

import (
	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/calendar"
	"github.com/incasso-io/incasso/internal/dunning"
	"github.com/incasso-io/incasso/internal/policy"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// SampleCreditor is the creditor of the sample letters.
var SampleCreditor = dunning.Creditor{Name: "Alfa Forniture S.r.l.", VATNumber: "IT01234567890", Address: "Via Roma 1, 20121 Milano (MI)",
	Email: "amministrazione@alfa.example", PEC: "alfa@pec.example", Phone: "+39 02 1234567", IBAN: "IT60X0542811101000000123456",
	Bank: "Banca Esempio", Signature: "Ufficio amministrazione"}

// Sample is a message of a stage as the engine would build it: two
// invoices of one client, one with a late installment and one not yet
// due, one partly credited. Templates are validated against the samples,
// and `dunning render` shows them.
func Sample(stage policy.Stage, ordinal int, lang string) dunning.Message {
	today := rcv.MustDate("2026-12-01")
	client := rcv.Client{ID: 7, Name: "Rossi & Figli S.r.l.", Email: "amministrazione@rossi.example", PEC: "rossi@pec.example", Language: lang}
	mk := func(id int64, number, date string, lines ...rcv.Installment) rcv.Invoice {
		return rcv.Invoice{CompanyID: 1, ID: id, Kind: rcv.KindInvoice, Number: number, Date: rcv.MustDate(date), Client: client, Installments: lines}
	}
	a := mk(101, "118/A", "2026-09-30", rcv.Installment{ID: 1, DueDate: rcv.MustDate("2026-10-30"), Amount: decimal.RequireFromString("488.00"), Status: rcv.NotPaid},
		rcv.Installment{ID: 2, DueDate: rcv.MustDate("2026-12-30"), Amount: decimal.RequireFromString("488.00"), Status: rcv.NotPaid})
	b := mk(102, "131/A", "2026-10-15", rcv.Installment{ID: 3, DueDate: rcv.MustDate("2026-11-16"), Amount: decimal.RequireFromString("1220.00"), Status: rcv.NotPaid})
	courtesy := stage.OffsetDays < 0
	if courtesy {
		today = rcv.MustDate("2026-10-27")
	}
	var items []dunning.Item
	for _, inv := range []rcv.Invoice{a, b} {
		c := &dunning.Case{CompanyID: 1, InvoiceID: inv.ID, Invoice: inv}
		if inv.ID == 102 {
			c.Credits = []dunning.Credit{{ID: 900, Number: "NC 4/A", Amount: decimal.RequireFromString("292.80")}}
		}
		it := dunning.Item{Invoice: inv, Stage: stage, Demand: dunning.DemandOn(c, today, courtesy, sampleCalendar)}
		if courtesy && inv.ID == 102 {
			continue
		}
		for _, d := range it.Demand.Items {
			it.DaysOverdue = max(it.DaysOverdue, d.DaysLate)
			if stage.Interest && !d.LateFrom.IsZero() {
				it.Interest = it.Interest.Add(d.Amount.Mul(decimal.RequireFromString("0.1015")).Mul(decimal.NewFromInt(int64(d.DaysLate))).Div(decimal.NewFromInt(365)).Round(2))
				it.Rates, it.InterestFrom = []decimal.Decimal{decimal.RequireFromString("10.15")}, d.LateFrom
			}
		}
		if stage.Interest {
			it.Compensation = decimal.NewFromInt(40)
		}
		items = append(items, it)
	}
	return dunning.Message{CompanyID: 1, Client: client, Channel: stage.Channels[0], Template: stage.Template, Stage: stage.Name, Language: lang,
		MessageID: "dunning-sample", Items: items, Date: today, Creditor: SampleCreditor, PriorContacts: ordinal - 1 + boolInt(stage.Template == "formal_notice"),
		Ordinal: ordinal, TermDays: stage.TermDays, Clause1454: stage.Clause1454}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Samples are the sample messages of every letter of the default policy
// in both languages.
func Samples() []dunning.Message {
	var out []dunning.Message
	p := policy.Default().Default
	for _, lang := range Languages {
		for i, s := range p.Stages {
			if s.Template == "handoff" {
				continue
			}
			out = append(out, Sample(s, p.Ordinal(i), lang))
		}
	}
	return out
}

var sampleCalendar = func() *calendar.Calendar {
	c, err := calendar.New("09:00", "18:00")
	if err != nil {
		panic(err)
	}
	return c
}()
