package receivables

import (
	"time"

	"github.com/shopspring/decimal"
)

// Kind tells invoices from credit notes.
type Kind string

// Document kinds.
const (
	KindInvoice    Kind = "invoice"
	KindCreditNote Kind = "credit_note"
)

// InstallmentStatus of one payment term.
type InstallmentStatus string

// Installment statuses (FIC's IssuedDocumentStatus).
const (
	NotPaid  InstallmentStatus = "not_paid"
	Paid     InstallmentStatus = "paid"
	Reversed InstallmentStatus = "reversed"
)

// Installment is one payment term of an invoice.
type Installment struct {
	ID       int64             `json:"id"`
	DueDate  Date              `json:"due_date"`
	Amount   decimal.Decimal   `json:"amount"`
	Status   InstallmentStatus `json:"status"`
	PaidDate Date              `json:"paid_date,omitzero"`
}

// Open reports whether the installment still has to be collected.
func (i Installment) Open() bool { return i.Status != Paid }

// Client is the customer an invoice is addressed to.
type Client struct {
	ID         int64  `json:"id,omitempty"`
	Name       string `json:"name"`
	VATNumber  string `json:"vat_number,omitempty"`
	TaxCode    string `json:"tax_code,omitempty"`
	Email      string `json:"email,omitempty"`
	PEC        string `json:"pec,omitempty"`
	Phone      string `json:"phone,omitempty"`
	Address    string `json:"address,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	City       string `json:"city,omitempty"`
	Province   string `json:"province,omitempty"`
	Country    string `json:"country,omitempty"` // ISO 3166-1 alpha-2 when known
	Language   string `json:"language,omitempty"`
}

// WithContactsOf returns the client of an invoice (c, a snapshot taken
// when it was issued) with the contacts of cur, the client's record today:
// e-mail and PEC as they are now (an address removed in FIC is not used),
// and the phone and postal address where the record has them. The name
// stays the invoice's: a letter is about that document.
func (c Client) WithContactsOf(cur Client) Client {
	out := c
	out.Email, out.PEC = cur.Email, cur.PEC
	if cur.Phone != "" {
		out.Phone = cur.Phone
	}
	if cur.Address != "" || cur.City != "" {
		out.Address, out.PostalCode, out.City, out.Province = cur.Address, cur.PostalCode, cur.City, cur.Province
		if cur.Country != "" {
			out.Country = cur.Country
		}
	}
	return out
}

// Invoice is Incasso's view of an issued invoice or credit note: what the
// receivables events carry and what the snapshot store keeps.
type Invoice struct {
	CompanyID    int64           `json:"company_id"`
	ID           int64           `json:"id"`
	Kind         Kind            `json:"kind"`
	Number       string          `json:"number"` // number + numeration, e.g. "42/A"
	Numeration   string          `json:"numeration,omitempty"`
	Date         Date            `json:"date"`
	Currency     string          `json:"currency"`
	Gross        decimal.Decimal `json:"amount_gross"`
	Net          decimal.Decimal `json:"amount_net"`
	SplitPayment bool            `json:"split_payment,omitempty"`
	Installments []Installment   `json:"installments"`
	Client       Client          `json:"client"`
	EIStatus     string          `json:"e_invoice_status,omitempty"`
	Subject      string          `json:"subject,omitempty"`
	// RefNumber/RefDate: for credit notes, the invoice they credit (when FIC
	// carries it in the e-invoice data).
	RefNumber string    `json:"ref_number,omitempty"`
	RefDate   Date      `json:"ref_date,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Payable is the sum of the installments: what the client owes in total
// (it differs from Gross with split payment or withholding tax).
func (inv *Invoice) Payable() decimal.Decimal {
	var s decimal.Decimal
	for _, i := range inv.Installments {
		s = s.Add(i.Amount)
	}
	return s
}

// AmountPaid is the sum of the paid installments.
func (inv *Invoice) AmountPaid() decimal.Decimal {
	var s decimal.Decimal
	for _, i := range inv.Installments {
		if i.Status == Paid {
			s = s.Add(i.Amount)
		}
	}
	return s
}

// AmountDue is what is still to be collected.
func (inv *Invoice) AmountDue() decimal.Decimal { return inv.Payable().Sub(inv.AmountPaid()) }

// FullyPaid reports whether every installment is paid (and there is at least one).
func (inv *Invoice) FullyPaid() bool {
	if len(inv.Installments) == 0 {
		return false
	}
	for _, i := range inv.Installments {
		if i.Status != Paid {
			return false
		}
	}
	return true
}

// DaysOverdue is how many days the oldest open installment is past its due
// date on day `today` (0 if none is).
func (inv *Invoice) DaysOverdue(today Date) int {
	days := 0
	for _, i := range inv.Installments {
		if i.Open() && today.After(i.DueDate) {
			days = max(days, today.Sub(i.DueDate))
		}
	}
	return days
}

// NextDue is the earliest due date of an open installment (zero if none).
func (inv *Invoice) NextDue() Date {
	var d Date
	for _, i := range inv.Installments {
		if i.Open() && (d.IsZero() || i.DueDate.Before(d)) {
			d = i.DueDate
		}
	}
	return d
}

// Installment returns the installment with the given id.
func (inv *Invoice) Installment(id int64) (Installment, bool) {
	for _, i := range inv.Installments {
		if i.ID == id {
			return i, true
		}
	}
	return Installment{}, false
}
