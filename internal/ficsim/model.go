package ficsim

import (
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// Client is a customer of a simulated company.
type Client struct {
	ID         int64
	Code       string
	Name       string
	Type       string // company, person, pa
	FirstName  string
	LastName   string
	VATNumber  string
	TaxCode    string
	Street     string
	PostalCode string
	City       string
	Province   string
	Country    string
	CountryISO string
	Email      string
	PEC        string
	Phone      string
	EICode     string
	Language   string // it, en
}

// Payment is an installment (payments_list item).
type Payment struct {
	ID       int64
	Amount   decimal.Decimal
	DueDate  string // YYYY-MM-DD
	Status   string // not_paid, paid, reversed
	PaidDate string
}

// Document is an issued invoice or credit note.
type Document struct {
	ID              int64
	Type            string // invoice, credit_note
	Number          int
	Numeration      string
	Date            string
	Client          Client // snapshot taken at issue
	Net, VAT, Gross decimal.Decimal
	Withholding     decimal.Decimal
	SplitPayment    bool
	Currency        string
	Language        string
	Subject         string
	Payments        []Payment
	EInvoice        bool
	EIStatus        string
	RefNumber       string // credit notes: referenced invoice number
	RefDate         string
	CreatedAt       time.Time
	UpdatedAt       time.Time

	// rendered caches this version's JSON per projection (see renderJSON).
	// A stored *Document never changes: edits go through clone(), which
	// starts a new version with an empty cache, so it cannot go stale.
	rendered [numProjections][]byte
}

// snapshot is a copy of d for the sandbox's Go API: its own installments
// and no render cache, so a caller can neither change the ledger nor see a
// stale rendering.
func (d *Document) snapshot() Document {
	c := *d
	c.Payments = slices.Clone(d.Payments)
	c.rendered = [numProjections][]byte{}
	return c
}

// Open reports whether an installment is still to be paid.
func (d *Document) Open() bool { return d.NextDueDate() != "" }

// NextDueDate is the due date of the earliest installment not paid.
func (d *Document) NextDueDate() string {
	next := ""
	for _, p := range d.Payments {
		if p.Status == "paid" {
			continue
		}
		if next == "" || p.DueDate < next {
			next = p.DueDate
		}
	}
	return next
}

func (d *Document) clone() *Document {
	c := *d
	c.Payments = slices.Clone(d.Payments)
	c.rendered = [numProjections][]byte{}
	return &c
}

// company is a simulated FIC company and its data.
type company struct {
	ID          int64
	Name        string
	VATNumber   string
	TaxCode     string
	Clients     []Client
	docs        map[int64]*Document
	order       []int64 // ids ascending, for sort=id scans
	bin         map[int64]*Document
	numbers     map[string]int // next number per type+numeration
	subs        map[string]*subscription
	quota       *quotaState
	scanFaultAt map[string]int // one-shot mid-scan faults: "insert"/"delete" -> page
	history     []HistoryEntry // changes made after seeding (see History)
}

func (c *company) put(d *Document) {
	if _, ok := c.docs[d.ID]; !ok {
		i, _ := slices.BinarySearch(c.order, d.ID)
		c.order = slices.Insert(c.order, i, d.ID)
	}
	c.docs[d.ID] = d
}

func (c *company) remove(id int64) (*Document, bool) {
	d, ok := c.docs[id]
	if !ok {
		return nil, false
	}
	delete(c.docs, id)
	if i, found := slices.BinarySearch(c.order, id); found {
		c.order = slices.Delete(c.order, i, i+1)
	}
	return d, true
}
