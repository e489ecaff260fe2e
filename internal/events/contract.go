package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/shopspring/decimal"

	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// SubjectPrefix is the root of every Incasso event subject.
const SubjectPrefix = "incasso.events"

// DataSchema is the ce-dataschema of receivables events; the schema file is
// docs/schemas/invoice-event.v1.json.
const DataSchema = "https://github.com/incasso-io/incasso/blob/main/docs/schemas/invoice-event.v1.json"

// Subject is incasso.events.<company_id>.<type>, e.g.
// incasso.events.1234.invoice.overdue.
func Subject(companyID int64, typ string) string {
	return SubjectPrefix + "." + strconv.FormatInt(companyID, 10) + "." + typ
}

// CompanySubjects is the wildcard for every event of a company.
func CompanySubjects(companyID int64) string {
	return SubjectPrefix + "." + strconv.FormatInt(companyID, 10) + ".>"
}

// Source is the ce-source of a company's events.
func Source(companyID int64) string { return "/fic/companies/" + strconv.FormatInt(companyID, 10) }

// DocumentSubject is the ce-subject: invoices/<id> or credit_notes/<id>.
func DocumentSubject(kind rcv.Kind, id int64) string {
	if kind == rcv.KindCreditNote {
		return "credit_notes/" + strconv.FormatInt(id, 10)
	}
	return "invoices/" + strconv.FormatInt(id, 10)
}

// TransitionID is the event id of a receivables transition: a function of
// the company, the document, the document's transition sequence number and
// the type. Every occurrence of a transition has its own sequence number,
// so a transition that really happens again (paid, reopened, paid) gets a
// new id, while a retry of the same occurrence (crash recovery) gets the
// same id and JetStream's duplicate window drops it.
func TransitionID(companyID, documentID int64, seq uint64, typ string) string {
	h := sha256.Sum256([]byte("v2|" + strconv.FormatInt(companyID, 10) + "|" + strconv.FormatInt(documentID, 10) + "|" +
		strconv.FormatUint(seq, 10) + "|" + typ))
	return hex.EncodeToString(h[:16])
}

// SeqExtension is the CloudEvents extension attribute (ce-docseq) carrying
// a receivables event's per-document sequence number: consumers can order a
// document's events by it and detect a gap.
const SeqExtension = "docseq"

// ID derives a deterministic event id from a key that is unique per
// occurrence (dunning outcomes, whose keys name the reminder attempt).
func ID(companyID, documentID int64, typ, key string) string {
	h := sha256.Sum256([]byte(strconv.FormatInt(companyID, 10) + "|" + strconv.FormatInt(documentID, 10) + "|" + typ + "|" + key))
	return hex.EncodeToString(h[:16])
}

// Installment is an installment in event data.
type Installment struct {
	ID       int64  `json:"id"`
	DueDate  string `json:"due_date"`
	Amount   string `json:"amount"`
	Status   string `json:"status"`
	PaidDate string `json:"paid_date,omitempty"`
}

// Client is the client in event data.
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
	Country    string `json:"country,omitempty"`
	Language   string `json:"language,omitempty"`
}

// Document is the snapshot of the invoice or credit note in event data.
// Money is a decimal string with two decimals; dates are YYYY-MM-DD.
type Document struct {
	CompanyID      int64         `json:"company_id"`
	ID             int64         `json:"id"`
	Kind           string        `json:"kind"`
	Number         string        `json:"number"`
	Numeration     string        `json:"numeration,omitempty"`
	Date           string        `json:"date"`
	Currency       string        `json:"currency"`
	AmountGross    string        `json:"amount_gross"`
	AmountNet      string        `json:"amount_net"`
	AmountPayable  string        `json:"amount_payable"`
	AmountPaid     string        `json:"amount_paid"`
	AmountDue      string        `json:"amount_due"`
	DaysOverdue    int           `json:"days_overdue"`
	NextDueDate    string        `json:"next_due_date,omitempty"`
	SplitPayment   bool          `json:"split_payment,omitempty"`
	Installments   []Installment `json:"installments"`
	Client         Client        `json:"client"`
	EInvoiceStatus string        `json:"e_invoice_status,omitempty"`
	Subject        string        `json:"subject,omitempty"`
	RefNumber      string        `json:"ref_number,omitempty"`
	RefDate        string        `json:"ref_date,omitempty"`
}

// Data is the JSON payload of every receivables event.
type Data struct {
	Document Document `json:"document"`
	// Installment is the installment concerned (due_soon, overdue, reopened).
	Installment *Installment `json:"installment,omitempty"`
	// PaidInstallments are the installments newly paid (paid, partially_paid).
	PaidInstallments []Installment `json:"paid_installments,omitempty"`
	// Changes lists what an update changed, with previous values.
	Changes []rcv.FieldChange `json:"changes,omitempty"`
}

func installment(i rcv.Installment) Installment {
	return Installment{ID: i.ID, DueDate: i.DueDate.String(), Amount: rcv.Money(i.Amount), Status: string(i.Status), PaidDate: i.PaidDate.String()}
}

// DocumentData renders the domain invoice as event data; today (Europe/Rome)
// is used for days_overdue.
func DocumentData(inv *rcv.Invoice, today rcv.Date) Document {
	d := Document{
		CompanyID: inv.CompanyID, ID: inv.ID, Kind: string(inv.Kind), Number: inv.Number, Numeration: inv.Numeration,
		Date: inv.Date.String(), Currency: inv.Currency, AmountGross: rcv.Money(inv.Gross), AmountNet: rcv.Money(inv.Net),
		AmountPayable: rcv.Money(inv.Payable()), AmountPaid: rcv.Money(inv.AmountPaid()), AmountDue: rcv.Money(inv.AmountDue()),
		DaysOverdue: inv.DaysOverdue(today), NextDueDate: inv.NextDue().String(), SplitPayment: inv.SplitPayment,
		Installments: make([]Installment, len(inv.Installments)), EInvoiceStatus: inv.EIStatus, Subject: inv.Subject,
		RefNumber: inv.RefNumber, RefDate: inv.RefDate.String(),
		Client: Client{ID: inv.Client.ID, Name: inv.Client.Name, VATNumber: inv.Client.VATNumber, TaxCode: inv.Client.TaxCode,
			Email: inv.Client.Email, PEC: inv.Client.PEC, Phone: inv.Client.Phone, Address: inv.Client.Address,
			PostalCode: inv.Client.PostalCode, City: inv.Client.City, Province: inv.Client.Province, Country: inv.Client.Country,
			Language: inv.Client.Language},
	}
	for i, in := range inv.Installments {
		d.Installments[i] = installment(in)
	}
	return d
}

// Build turns a transition into a validated CloudEvent with its subject.
func Build(c rcv.Change) (string, event.Event, error) {
	inv := &c.Invoice
	e := event.New(event.CloudEventsVersionV1)
	if c.Seq == 0 {
		return "", e, fmt.Errorf("events: %s of document %d has no sequence number", c.Type, inv.ID)
	}
	e.SetID(TransitionID(inv.CompanyID, inv.ID, c.Seq, string(c.Type)))
	e.SetExtension(SeqExtension, strconv.FormatUint(c.Seq, 10))
	e.SetSource(Source(inv.CompanyID))
	e.SetType(string(c.Type))
	e.SetSubject(DocumentSubject(inv.Kind, inv.ID))
	e.SetTime(c.At.UTC())
	e.SetDataSchema(DataSchema)
	data := Data{Document: DocumentData(inv, rcv.DateIn(c.At, rcv.Rome)), Changes: c.Changes}
	if c.Installment != nil {
		in := installment(*c.Installment)
		data.Installment = &in
	}
	for _, p := range c.Paid {
		data.PaidInstallments = append(data.PaidInstallments, installment(p))
	}
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return "", e, fmt.Errorf("events: encode data: %w", err)
	}
	if err := e.Validate(); err != nil {
		return "", e, fmt.Errorf("events: invalid event %s: %w", c.Type, err)
	}
	return Subject(inv.CompanyID, string(c.Type)), e, nil
}

// ParseData decodes the data of a receivables event.
func ParseData(e event.Event) (Data, error) {
	var d Data
	if err := json.Unmarshal(e.Data(), &d); err != nil {
		return d, fmt.Errorf("%w: data of %s %s: %v", ErrInvalid, e.Type(), e.ID(), err)
	}
	return d, nil
}

// CompanyFromSubject extracts the company id from an event subject.
func CompanyFromSubject(subject string) (int64, string, error) {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix+".")
	if !ok {
		return 0, "", fmt.Errorf("%w: subject %q outside %s", ErrInvalid, subject, SubjectPrefix)
	}
	cid, typ, ok := strings.Cut(rest, ".")
	id, err := strconv.ParseInt(cid, 10, 64)
	if !ok || err != nil || id <= 0 {
		return 0, "", fmt.Errorf("%w: subject %q: bad company id", ErrInvalid, subject)
	}
	return id, typ, nil
}

// Invoice converts event data back into the domain view (what consumers
// such as dunning work on). Malformed money or dates are an ErrInvalid.
func (d Document) Invoice() (rcv.Invoice, error) {
	bad := func(f string, err error) (rcv.Invoice, error) {
		return rcv.Invoice{}, fmt.Errorf("%w: document %d: %s: %v", ErrInvalid, d.ID, f, err)
	}
	money := func(s string) (decimal.Decimal, error) { return decimal.NewFromString(s) }
	date := func(s string) (rcv.Date, error) {
		if s == "" {
			return rcv.Date{}, nil
		}
		return rcv.ParseDate(s)
	}
	inv := rcv.Invoice{CompanyID: d.CompanyID, ID: d.ID, Kind: rcv.Kind(d.Kind), Number: d.Number, Numeration: d.Numeration,
		Currency: d.Currency, SplitPayment: d.SplitPayment, EIStatus: d.EInvoiceStatus, Subject: d.Subject, RefNumber: d.RefNumber,
		Client: rcv.Client{ID: d.Client.ID, Name: d.Client.Name, VATNumber: d.Client.VATNumber, TaxCode: d.Client.TaxCode,
			Email: d.Client.Email, PEC: d.Client.PEC, Phone: d.Client.Phone, Address: d.Client.Address, PostalCode: d.Client.PostalCode,
			City: d.Client.City, Province: d.Client.Province, Country: d.Client.Country, Language: d.Client.Language}}
	var err error
	if inv.Date, err = date(d.Date); err != nil {
		return bad("date", err)
	}
	if inv.RefDate, err = date(d.RefDate); err != nil {
		return bad("ref_date", err)
	}
	if inv.Gross, err = money(d.AmountGross); err != nil {
		return bad("amount_gross", err)
	}
	if inv.Net, err = money(d.AmountNet); err != nil {
		return bad("amount_net", err)
	}
	for i, in := range d.Installments {
		x := rcv.Installment{ID: in.ID, Status: rcv.InstallmentStatus(in.Status)}
		if x.DueDate, err = date(in.DueDate); err != nil || x.DueDate.IsZero() {
			return bad(fmt.Sprintf("installments[%d].due_date", i), err)
		}
		if x.PaidDate, err = date(in.PaidDate); err != nil {
			return bad(fmt.Sprintf("installments[%d].paid_date", i), err)
		}
		if x.Amount, err = money(in.Amount); err != nil {
			return bad(fmt.Sprintf("installments[%d].amount", i), err)
		}
		inv.Installments = append(inv.Installments, x)
	}
	return inv, nil
}
