package ficsim

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

var (
	companyNames = []string{"Officine Lombarde S.r.l.", "Studio Tecnico Bellini", "Agrumi di Sicilia S.p.A.", "Tipografia Veneta S.n.c.",
		"Cantina dei Colli S.r.l.", "Nordest Software S.r.l.", "Ferramenta Gallo & C. S.a.s.", "Pasticceria Moretti S.r.l."}
	numerations = []string{"", "", "", "/A", "/B"}
	vatRates    = []int64{22, 22, 22, 22, 10, 4}
	subjects    = []string{"Consulenza mensile", "Fornitura materiali", "Manutenzione impianti", "Sviluppo software", "Servizi di trasporto", "Canone assistenza"}
)

// seed builds deterministic companies, clients, invoices and credit notes
// spread around today so that some are overdue, some due soon, some paid.
func (s *Server) seed() {
	r := mrand.New(mrand.NewPCG(s.cfg.Seed, 0x5EED))
	today := s.nowLocked().In(rome)
	for i := 0; i < s.cfg.Companies; i++ {
		id := int64(1_000_001 + i)
		vat := randomVAT(r)
		c := &company{
			ID: id, Name: companyNames[i%len(companyNames)], VATNumber: vat, TaxCode: vat,
			docs: map[int64]*Document{}, bin: map[int64]*Document{}, numbers: map[string]int{},
			subs: map[string]*subscription{}, quota: &quotaState{}, scanFaultAt: map[string]int{},
		}
		if i >= len(companyNames) {
			c.Name = fmt.Sprintf("%s %d", companyNames[i%len(companyNames)], i/len(companyNames)+1)
		}
		nClients := max(10, s.cfg.Invoices/8)
		for j := 0; j < nClients; j++ {
			c.Clients = append(c.Clients, randomClient(r, id*1000+int64(j)+1))
		}
		// Dates first, sorted, so ids and numbers grow with the date.
		dates := make([]time.Time, s.cfg.Invoices)
		for j := range dates {
			dates[j] = today.AddDate(0, 0, -r.IntN(300))
		}
		slices.SortFunc(dates, func(a, b time.Time) int { return a.Compare(b) })
		var invoices []*Document
		for _, d := range dates {
			doc := s.newInvoice(r, c, c.Clients[r.IntN(len(c.Clients))], d, today, true)
			invoices = append(invoices, doc)
		}
		for j := 0; j < s.cfg.CreditNotes && len(invoices) > 0; j++ {
			inv := invoices[r.IntN(len(invoices))]
			s.newCreditNote(r, c, inv, today)
		}
		s.comps[id] = c
		s.ids = append(s.ids, id)
	}
}

func money(r *mrand.Rand) decimal.Decimal {
	// Log-uniform-ish between 80 and 25,000 euro, in cents.
	cents := int64(8000 + r.IntN(50000))
	if r.IntN(3) == 0 {
		cents *= int64(2 + r.IntN(10))
	}
	return decimal.New(cents, -2)
}

func (s *Server) nextNumber(c *company, typ, numeration string, year int) int {
	k := fmt.Sprintf("%s|%s|%d", typ, numeration, year)
	c.numbers[k]++
	return c.numbers[k]
}

func (s *Server) newID() int64 {
	id := s.nextID
	s.nextID++
	return id
}

// newInvoice creates an invoice issued on date. With history, installments
// already due are mostly paid, as in a real ledger.
func (s *Server) newInvoice(r *mrand.Rand, c *company, cl Client, date, today time.Time, history bool) *Document {
	net := money(r)
	rate := vatRates[r.IntN(len(vatRates))]
	if cl.CountryISO != "IT" {
		rate = 0 // reverse charge
	}
	vat := net.Mul(decimal.NewFromInt(rate)).Div(decimal.NewFromInt(100)).Round(2)
	d := &Document{
		ID: s.newID(), Type: "invoice", Numeration: numerations[r.IntN(len(numerations))],
		Date: date.Format(time.DateOnly), Client: cl, Net: net, VAT: vat, Gross: net.Add(vat),
		Currency: "EUR", Language: cl.Language, Subject: subjects[r.IntN(len(subjects))],
		SplitPayment: cl.Type == "pa", EInvoice: cl.CountryISO == "IT",
		CreatedAt: time.Date(date.Year(), date.Month(), date.Day(), 9+r.IntN(9), r.IntN(60), r.IntN(60), 0, rome),
	}
	d.Number = s.nextNumber(c, "invoice", d.Numeration, date.Year())
	if d.EInvoice {
		// Only a public administration accepts, rejects or lets the term
		// lapse (no_response); a B2B e-invoice stays "sent" once SDI
		// delivered it.
		d.EIStatus = []string{"sent", "accepted", "accepted", "accepted", "no_response", "rejected"}[r.IntN(6)]
		if cl.Type != "pa" {
			d.EIStatus = "sent"
		}
		if today.Sub(date) < 3*24*time.Hour {
			d.EIStatus = "processing"
		}
	}
	payable := d.Gross
	if d.SplitPayment {
		payable = d.Net // the PA pays VAT to the Treasury directly
	}
	n := 1
	switch k := r.IntN(10); {
	case k >= 9:
		n = 3
	case k >= 7:
		n = 2
	}
	terms := []int{30, 60, 90}[r.IntN(3)]
	endOfMonth := r.IntN(2) == 0
	share := payable.Div(decimal.NewFromInt(int64(n))).RoundDown(2)
	for k := 0; k < n; k++ {
		due := date.AddDate(0, 0, terms*(k+1))
		if endOfMonth {
			due = time.Date(due.Year(), due.Month()+1, 0, 0, 0, 0, 0, rome)
		}
		amt := share
		if k == n-1 {
			amt = payable.Sub(share.Mul(decimal.NewFromInt(int64(n - 1))))
		}
		p := Payment{ID: s.newID(), Amount: amt, DueDate: due.Format(time.DateOnly), Status: "not_paid"}
		if history {
			paidProb := 0.08
			if due.Before(today) {
				paidProb = 0.72
			}
			if r.Float64() < paidProb {
				paid := due.AddDate(0, 0, r.IntN(25)-5)
				if paid.After(today) {
					paid = today
				}
				if paid.Before(date) {
					paid = date
				}
				p.Status, p.PaidDate = "paid", paid.Format(time.DateOnly)
			}
		}
		d.Payments = append(d.Payments, p)
	}
	d.UpdatedAt = d.CreatedAt
	for _, p := range d.Payments {
		if p.PaidDate != "" {
			if t, _ := time.ParseInLocation(time.DateOnly, p.PaidDate, rome); t.Add(15 * time.Hour).After(d.UpdatedAt) {
				d.UpdatedAt = t.Add(15 * time.Hour)
			}
		}
	}
	c.put(d)
	return d
}

// newCreditNote credits part or all of an invoice.
func (s *Server) newCreditNote(r *mrand.Rand, c *company, inv *Document, today time.Time) *Document {
	frac := []int64{100, 50, 30, 10}[r.IntN(4)]
	net := inv.Net.Mul(decimal.NewFromInt(frac)).Div(decimal.NewFromInt(100)).Round(2)
	vat := net.Mul(inv.VAT).Div(nonZero(inv.Net)).Round(2)
	invDate, _ := time.ParseInLocation(time.DateOnly, inv.Date, rome)
	date := invDate.AddDate(0, 0, 5+r.IntN(30))
	if date.After(today) {
		date = today
	}
	d := &Document{
		ID: s.newID(), Type: "credit_note", Numeration: "/NC", Date: date.Format(time.DateOnly), Client: inv.Client,
		Net: net, VAT: vat, Gross: net.Add(vat), Currency: "EUR", Language: inv.Language,
		Subject: "Nota di credito su fattura " + fmt.Sprint(inv.Number) + inv.Numeration, EInvoice: inv.EInvoice,
		RefNumber: fmt.Sprint(inv.Number) + inv.Numeration, RefDate: inv.Date,
		CreatedAt: time.Date(date.Year(), date.Month(), date.Day(), 11, 0, 0, 0, rome),
	}
	if d.EInvoice {
		d.EIStatus = "sent"
	}
	d.Number = s.nextNumber(c, "credit_note", d.Numeration, date.Year())
	p := Payment{ID: s.newID(), Amount: d.Gross, DueDate: d.Date, Status: "not_paid"}
	if r.IntN(2) == 0 {
		p.Status, p.PaidDate = "paid", d.Date
	}
	d.Payments = []Payment{p}
	d.UpdatedAt = d.CreatedAt
	c.put(d)
	return d
}

func nonZero(d decimal.Decimal) decimal.Decimal {
	if d.IsZero() {
		return decimal.NewFromInt(1)
	}
	return d
}
