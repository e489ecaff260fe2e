package fic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/receivables"
)

// DocumentType is the `type` of an issued document.
type DocumentType string

// The issued-document types Incasso reads.
const (
	TypeInvoice    DocumentType = "invoice"
	TypeCreditNote DocumentType = "credit_note"
)

// InstallmentStatus is IssuedDocumentStatus in the spec.
type InstallmentStatus string

// Installment statuses as FIC sends them.
const (
	StatusNotPaid  InstallmentStatus = "not_paid"
	StatusPaid     InstallmentStatus = "paid"
	StatusReversed InstallmentStatus = "reversed"
)

// Document is an issued document (invoice or credit note) with the fields that
// matter for receivables. Every field is optional on the wire: FIC declares
// them all nullable. Unknown fields are ignored. Money is decimal; a null
// amount is kept as invalid (NullDecimal.Valid == false), never as zero.
type Document struct {
	ID                int64               `json:"id"`
	Type              DocumentType        `json:"type,omitempty"`
	Number            *int64              `json:"number,omitempty"`
	Numeration        string              `json:"numeration,omitempty"`
	Date              receivables.Date    `json:"date,omitzero"`
	Year              *int                `json:"year,omitempty"`
	Subject           string              `json:"subject,omitempty"`
	VisibleSubject    string              `json:"visible_subject,omitempty"`
	Currency          *Currency           `json:"currency,omitempty"`
	Language          *Language           `json:"language,omitempty"`
	AmountNet         decimal.NullDecimal `json:"amount_net"`
	AmountVAT         decimal.NullDecimal `json:"amount_vat"`
	AmountGross       decimal.NullDecimal `json:"amount_gross"`
	AmountDueDiscount decimal.NullDecimal `json:"amount_due_discount"`
	WithholdingTax    decimal.NullDecimal `json:"amount_withholding_tax"`
	UseSplitPayment   bool                `json:"use_split_payment,omitempty"`
	Entity            *Entity             `json:"entity,omitempty"`
	PaymentsList      []Installment       `json:"payments_list,omitempty"`
	NextDueDate       receivables.Date    `json:"next_due_date,omitzero"`
	SeenDate          receivables.Date    `json:"seen_date,omitzero"`
	EInvoice          bool                `json:"e_invoice,omitempty"`
	EIStatus          string              `json:"ei_status,omitempty"`
	EIData            *EIData             `json:"ei_data,omitempty"`
	IsMarked          bool                `json:"is_marked,omitempty"`
	Locked            bool                `json:"locked,omitempty"`
	Notes             string              `json:"notes,omitempty"`
	URL               string              `json:"url,omitempty"`
	CreatedAt         Timestamp           `json:"created_at,omitzero"`
	UpdatedAt         Timestamp           `json:"updated_at,omitzero"`
}

// Currency is the document currency. ExchangeRate is a string on the wire.
type Currency struct {
	ID           string          `json:"id,omitempty"`
	Symbol       string          `json:"symbol,omitempty"`
	ExchangeRate decimal.Decimal `json:"exchange_rate,omitzero"`
}

// Language is the document language; Code is "it", "en", ...
type Language struct {
	Code string `json:"code,omitempty"`
	Name string `json:"name,omitempty"`
}

// EIData carries e-invoice metadata; for credit notes it may reference the
// original invoice.
type EIData struct {
	InvoiceNumber string           `json:"invoice_number,omitempty"`
	InvoiceDate   receivables.Date `json:"invoice_date,omitzero"`
}

// Entity is the client as embedded in a document (a snapshot taken when the
// document was issued).
type Entity struct {
	ID             *int64     `json:"id,omitempty"`
	Code           FlexString `json:"code,omitempty"`
	Name           string     `json:"name,omitempty"`
	Type           string     `json:"type,omitempty"`
	FirstName      string     `json:"first_name,omitempty"`
	LastName       string     `json:"last_name,omitempty"`
	VATNumber      FlexString `json:"vat_number,omitempty"`
	TaxCode        FlexString `json:"tax_code,omitempty"`
	AddressStreet  string     `json:"address_street,omitempty"`
	PostalCode     FlexString `json:"address_postal_code,omitempty"`
	City           string     `json:"address_city,omitempty"`
	Province       string     `json:"address_province,omitempty"`
	AddressExtra   string     `json:"address_extra,omitempty"`
	Country        string     `json:"country,omitempty"`
	CountryISO     string     `json:"country_iso,omitempty"`
	Email          string     `json:"email,omitempty"`
	CertifiedEmail string     `json:"certified_email,omitempty"`
	Phone          FlexString `json:"phone,omitempty"`
	EICode         string     `json:"ei_code,omitempty"`
}

// Installment is an item of payments_list.
type Installment struct {
	ID       *int64              `json:"id,omitempty"`
	Amount   decimal.NullDecimal `json:"amount"`
	DueDate  receivables.Date    `json:"due_date,omitzero"`
	Status   InstallmentStatus   `json:"status,omitempty"`
	PaidDate receivables.Date    `json:"paid_date,omitzero"`
}

// Company is an item of GET /user/companies.
type Company struct {
	ID                  int64      `json:"id"`
	Name                string     `json:"name,omitempty"`
	Type                string     `json:"type,omitempty"`
	VATNumber           FlexString `json:"vat_number,omitempty"`
	TaxCode             FlexString `json:"tax_code,omitempty"`
	FICPlan             string     `json:"fic_plan,omitempty"`
	ConnectionID        *int64     `json:"connection_id,omitempty"`
	ControlledCompanies []Company  `json:"controlled_companies,omitempty"`
}

// FlexString is a string field that FIC sometimes sends as a JSON number
// (the spec's own examples carry vat_number: 3881520161). Null is "".
type FlexString string

// UnmarshalJSON accepts a string, a number or null.
func (s *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = ""
	case len(b) > 0 && b[0] == '"':
		if v, ok := plainString(b); ok {
			*s = FlexString(v)
			return nil
		}
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = FlexString(v)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want string or number, got %s", b)
		}
		*s = FlexString(n.String())
	}
	return nil
}

// plainString returns the contents of a JSON string literal that has no
// escape sequence (almost every value FIC sends), without the allocations
// of a full decode; ok is false for anything else.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	in := b[1 : len(b)-1]
	for _, c := range in {
		if c == '\\' || c == '"' || c < 0x20 || c >= 0x80 {
			return "", false
		}
	}
	return string(in), true
}

// Timestamp is FIC's "YYYY-MM-DD hh:mm:ss" with no zone, read as Europe/Rome.
// RFC 3339 values are accepted too. The zero Timestamp means absent.
type Timestamp struct{ time.Time }

// UnmarshalJSON parses a FIC timestamp; null and "" are the zero Timestamp.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*t = Timestamp{}
		return nil
	}
	s, ok := plainString(b)
	if !ok {
		var err error
		if s, err = strconv.Unquote(string(b)); err != nil {
			return fmt.Errorf("timestamp: want a string, got %s", b)
		}
	}
	if s == "" {
		*t = Timestamp{}
		return nil
	}
	if v, err := time.ParseInLocation(time.DateTime, s, receivables.Rome); err == nil {
		*t = Timestamp{v}
		return nil
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("timestamp %q: want \"YYYY-MM-DD hh:mm:ss\"", s)
	}
	*t = Timestamp{v}
	return nil
}

// MarshalJSON writes the FIC form in Europe/Rome.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(strconv.Quote(t.In(receivables.Rome).Format(time.DateTime))), nil
}

var idRE = regexp.MustCompile(`^\s*\{\s*"id"\s*:\s*"?(\d{1,19})`)

// docID extracts the id of a raw document for error messages, "?" if none.
func docID(raw json.RawMessage) string {
	var head struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(raw, &head) != nil || len(head.ID) == 0 {
		// Truncated or broken JSON: look for the id textually.
		if m := idRE.FindSubmatch(raw); m != nil {
			return string(m[1])
		}
		return "?"
	}
	return strings.Trim(string(head.ID), `"`)
}

// DecodeDocument decodes one issued document. The error names the document
// id (when readable) and the field that failed.
func DecodeDocument(raw json.RawMessage) (Document, error) {
	var d Document
	if err := json.Unmarshal(raw, &d); err != nil {
		return Document{}, &DecodeError{DocumentID: docID(raw), Err: err}
	}
	if err := d.validate(); err != nil {
		if d.ID <= 0 {
			return Document{}, &DecodeError{DocumentID: docID(raw), Err: err}
		}
		return Document{}, err
	}
	return d, nil
}

// validate checks what JSON decoding cannot: an id, and installments with
// an amount and a known status (a missing status is the spec's not_paid).
func (d *Document) validate() error {
	if d.ID <= 0 {
		return fmt.Errorf("missing or invalid id")
	}
	for i, p := range d.PaymentsList {
		if !p.Amount.Valid {
			return &DecodeError{DocumentID: strconv.FormatInt(d.ID, 10),
				Err: fmt.Errorf("payments_list[%d].amount is null", i)}
		}
		switch p.Status {
		case StatusNotPaid, StatusPaid, StatusReversed:
		case "":
			d.PaymentsList[i].Status = StatusNotPaid // the spec's default
		default:
			return &DecodeError{DocumentID: strconv.FormatInt(d.ID, 10),
				Err: fmt.Errorf("payments_list[%d].status %q: want not_paid, paid or reversed", i, p.Status)}
		}
	}
	return nil
}

// DecodeError is a document FIC sent that Incasso cannot read.
type DecodeError struct {
	DocumentID string
	Err        error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("fic: malformed issued document %s: %v", e.DocumentID, e.Err)
}

func (e *DecodeError) Unwrap() []error { return []error{ErrMalformed, e.Err} }
