package fic

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/incasso-io/incasso/internal/receivables"
)

// Invoice converts a document into the domain view. It fails (wrapping
// ErrMalformed) when the document lacks what receivables need: a known
// type and, for each installment, an id and a due date.
func (d Document) Invoice(companyID int64) (receivables.Invoice, error) {
	fail := func(f string, a ...any) (receivables.Invoice, error) {
		return receivables.Invoice{}, &DecodeError{DocumentID: strconv.FormatInt(d.ID, 10), Err: fmt.Errorf(f, a...)}
	}
	inv := receivables.Invoice{
		CompanyID: companyID, ID: d.ID, Numeration: d.Numeration, Date: d.Date,
		Net: d.AmountNet.Decimal, Gross: d.AmountGross.Decimal, SplitPayment: d.UseSplitPayment,
		EIStatus: d.EIStatus, Subject: d.Subject, UpdatedAt: d.UpdatedAt.Time,
		Currency: "EUR",
	}
	switch d.Type {
	case TypeInvoice:
		inv.Kind = receivables.KindInvoice
	case TypeCreditNote:
		inv.Kind = receivables.KindCreditNote
	default:
		return fail("type %q is neither invoice nor credit_note", d.Type)
	}
	if !d.AmountGross.Valid {
		return fail("amount_gross is missing (ask for fieldset=detailed)")
	}
	if d.Number != nil {
		inv.Number = strconv.FormatInt(*d.Number, 10) + d.Numeration
	}
	if d.Currency != nil && d.Currency.ID != "" {
		inv.Currency = d.Currency.ID
	}
	if d.EIData != nil {
		inv.RefNumber, inv.RefDate = d.EIData.InvoiceNumber, d.EIData.InvoiceDate
	}
	if e := d.Entity; e != nil {
		inv.Client = e.Client()
	}
	if d.Language != nil {
		inv.Client.Language = d.Language.Code
	}
	if d.PaymentsList == nil {
		return fail("payments_list is missing (ask for fieldset=detailed or fields=payments_list)")
	}
	inv.Installments = make([]receivables.Installment, 0, len(d.PaymentsList))
	for i, p := range d.PaymentsList {
		if p.ID == nil {
			return fail("payments_list[%d].id is missing", i)
		}
		if p.DueDate.IsZero() {
			return fail("payments_list[%d].due_date is missing", i)
		}
		inv.Installments = append(inv.Installments, receivables.Installment{
			ID: *p.ID, DueDate: p.DueDate, Amount: p.Amount.Decimal,
			Status: receivables.InstallmentStatus(p.Status), PaidDate: p.PaidDate,
		})
	}
	return inv, nil
}

// Client converts an entity (a document's snapshot or a client record) to
// Incasso's client.
func (e Entity) Client() receivables.Client {
	c := receivables.Client{
		Name: e.Name, VATNumber: string(e.VATNumber), TaxCode: string(e.TaxCode), Email: e.Email,
		PEC: e.CertifiedEmail, Phone: string(e.Phone), Address: e.AddressStreet, PostalCode: string(e.PostalCode),
		City: e.City, Province: e.Province, Country: strings.ToUpper(e.CountryISO),
	}
	if c.Country == "" && (strings.EqualFold(e.Country, "italia") || e.Country == "") {
		c.Country = "IT"
	}
	if e.ID != nil {
		c.ID = *e.ID
	}
	if c.Name == "" {
		c.Name = strings.TrimSpace(e.FirstName + " " + e.LastName)
	}
	return c
}
