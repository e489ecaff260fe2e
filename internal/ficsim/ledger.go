// The sandbox ledger as the admin API changes it: documents created,
// edited, paid, reversed, moved, deleted. Every change is recorded in the
// history and notified to webhook subscribers, as FIC would.

package ficsim

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// Admin errors.
var (
	ErrNoCompany  = errors.New("ficsim: no such company")
	ErrNoDocument = errors.New("ficsim: no such document")
	ErrBadRequest = errors.New("ficsim: bad request")
	ErrNoClient   = errors.New("ficsim: no such client")
)

func (s *Server) companyLocked(cid int64) (*company, error) {
	c, ok := s.comps[cid]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrNoCompany, cid)
	}
	return c, nil
}

func (s *Server) docLocked(cid, id int64) (*company, *Document, error) {
	c, err := s.companyLocked(cid)
	if err != nil {
		return nil, nil, err
	}
	d, ok := c.docs[id]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %d in company %d", ErrNoDocument, id, cid)
	}
	return c, d, nil
}

// NewDocument describes a document created through the admin API. Zero
// fields are filled with realistic random values.
type NewDocument struct {
	Type         string           `json:"type"` // invoice (default) or credit_note
	ClientID     int64            `json:"client_id"`
	Date         string           `json:"date"`
	AmountNet    *decimal.Decimal `json:"amount_net"`
	VATRate      *int64           `json:"vat_rate"`
	Installments int              `json:"installments"`
	DueDates     []string         `json:"due_dates"`
	InvoiceID    int64            `json:"invoice_id"` // credit notes: the invoice credited
}

// CreateDocument adds an invoice or credit note and notifies webhooks.
func (s *Server) CreateDocument(cid int64, nd NewDocument) (Document, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return Document{}, err
	}
	today := s.nowLocked().In(rome)
	date := today
	if nd.Date != "" {
		if date, err = time.ParseInLocation(time.DateOnly, nd.Date, rome); err != nil {
			return Document{}, fmt.Errorf("%w: date %q", ErrBadRequest, nd.Date)
		}
	}
	var d *Document
	switch nd.Type {
	case "", "invoice":
		cl := c.Clients[s.rnd.IntN(len(c.Clients))]
		if nd.ClientID != 0 {
			i := slices.IndexFunc(c.Clients, func(x Client) bool { return x.ID == nd.ClientID })
			if i < 0 {
				return Document{}, fmt.Errorf("%w: no client %d", ErrBadRequest, nd.ClientID)
			}
			cl = c.Clients[i]
		}
		d = s.newInvoice(s.rnd, c, cl, date, today, false)
		if nd.AmountNet != nil || nd.VATRate != nil || nd.Installments > 0 || len(nd.DueDates) > 0 {
			if err := s.reprice(d, nd.AmountNet, nd.VATRate, max(nd.Installments, len(nd.DueDates)), nd.DueDates); err != nil {
				c.remove(d.ID)
				return Document{}, err
			}
		}
	case "credit_note":
		inv, ok := c.docs[nd.InvoiceID]
		if !ok {
			for _, id := range c.order {
				if c.docs[id].Type == "invoice" {
					inv = c.docs[id]
					break
				}
			}
		}
		if inv == nil {
			return Document{}, fmt.Errorf("%w: no invoice to credit", ErrBadRequest)
		}
		d = s.newCreditNote(s.rnd, c, inv, today)
		if nd.AmountNet != nil || nd.VATRate != nil {
			if err := s.reprice(d, nd.AmountNet, nd.VATRate, 0, nil); err != nil {
				return Document{}, err
			}
		}
	default:
		return Document{}, fmt.Errorf("%w: type %q", ErrBadRequest, nd.Type)
	}
	d.CreatedAt, d.UpdatedAt = s.nowLocked(), s.nowLocked()
	s.recordLocked(c, d.ID, "create", d)
	s.notifyLocked(c, d.Type, "create", d.ID)
	return d.snapshot(), nil
}

// reprice sets amounts and installments of d.
func (s *Server) reprice(d *Document, net *decimal.Decimal, rate *int64, n int, dues []string) error {
	if net != nil {
		if !net.IsPositive() {
			return fmt.Errorf("%w: amount_net must be positive", ErrBadRequest)
		}
		d.Net = net.Round(2)
	}
	r := int64(22)
	if !d.Net.IsZero() {
		r = d.VAT.Mul(decimal.NewFromInt(100)).Div(d.Net).Round(0).IntPart()
	}
	if rate != nil {
		r = *rate
	}
	d.VAT = d.Net.Mul(decimal.NewFromInt(r)).Div(decimal.NewFromInt(100)).Round(2)
	d.Gross = d.Net.Add(d.VAT)
	payable := d.Gross
	if d.SplitPayment {
		payable = d.Net
	}
	if n <= 0 {
		n = len(d.Payments)
	}
	share := payable.Div(decimal.NewFromInt(int64(n))).RoundDown(2)
	old := d.Payments
	d.Payments = nil
	for k := 0; k < n; k++ {
		p := Payment{Amount: share, Status: "not_paid"}
		if k < len(old) {
			p.ID, p.DueDate = old[k].ID, old[k].DueDate
		} else {
			p.ID = s.newID()
			base, _ := time.ParseInLocation(time.DateOnly, d.Date, rome)
			p.DueDate = base.AddDate(0, 0, 30*(k+1)).Format(time.DateOnly)
		}
		if k < len(dues) {
			if _, err := time.Parse(time.DateOnly, dues[k]); err != nil {
				return fmt.Errorf("%w: due date %q", ErrBadRequest, dues[k])
			}
			p.DueDate = dues[k]
		}
		if k == n-1 {
			p.Amount = payable.Sub(share.Mul(decimal.NewFromInt(int64(n - 1))))
		}
		d.Payments = append(d.Payments, p)
	}
	return nil
}

// DocumentUpdate changes a document like an edit in FIC's web app.
type DocumentUpdate struct {
	AmountNet *decimal.Decimal `json:"amount_net"`
	VATRate   *int64           `json:"vat_rate"`
	ClientID  int64            `json:"client_id"`
	Subject   *string          `json:"subject"`
	EIStatus  *string          `json:"ei_status"`
}

// UpdateDocument applies u and notifies webhooks.
func (s *Server) UpdateDocument(cid, id int64, u DocumentUpdate) (Document, error) {
	return s.mutate(cid, id, func(c *company, d *Document) error {
		if u.ClientID != 0 {
			i := slices.IndexFunc(c.Clients, func(x Client) bool { return x.ID == u.ClientID })
			if i < 0 {
				return fmt.Errorf("%w: no client %d", ErrBadRequest, u.ClientID)
			}
			d.Client = c.Clients[i]
			d.SplitPayment = d.Client.Type == "pa"
		}
		if u.Subject != nil {
			d.Subject = *u.Subject
		}
		if u.EIStatus != nil {
			d.EIStatus = *u.EIStatus
		}
		if u.AmountNet != nil || u.VATRate != nil {
			for _, p := range d.Payments {
				if p.Status == "paid" {
					return fmt.Errorf("%w: cannot change amounts of a document with paid installments", ErrBadRequest)
				}
			}
			return s.reprice(d, u.AmountNet, u.VATRate, 0, nil)
		}
		return nil
	})
}

func (s *Server) mutate(cid, id int64, f func(*company, *Document) error) (Document, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, d, err := s.docLocked(cid, id)
	if err != nil {
		return Document{}, err
	}
	next := d.clone()
	if err := f(c, next); err != nil {
		return Document{}, err
	}
	next.UpdatedAt = s.nowLocked()
	c.docs[id] = next
	s.recordLocked(c, id, "update", next)
	s.notifyLocked(c, next.Type, "update", id)
	return next.snapshot(), nil
}

func (s *Server) installment(d *Document, idx *int, wantStatus string) (int, error) {
	if idx != nil {
		if *idx < 0 || *idx >= len(d.Payments) {
			return 0, fmt.Errorf("%w: installment %d out of range (0..%d)", ErrBadRequest, *idx, len(d.Payments)-1)
		}
		return *idx, nil
	}
	for i, p := range d.Payments {
		if p.Status == wantStatus || (wantStatus == "not_paid" && p.Status == "reversed") {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: no %s installment", ErrBadRequest, wantStatus)
}

// Payment describes a payment recorded through the admin API.
type PaymentSpec struct {
	Installment *int             `json:"installment"` // index; default: first unpaid
	Amount      *decimal.Decimal `json:"amount"`      // partial payment; default: the whole installment
	PaidDate    string           `json:"paid_date"`   // default: today
}

// Pay marks an installment paid. A partial amount splits the installment,
// as FIC does: a paid part and an unpaid remainder with the same due date.
func (s *Server) Pay(cid, id int64, ps PaymentSpec) (Document, error) {
	return s.mutate(cid, id, func(c *company, d *Document) error {
		i, err := s.installment(d, ps.Installment, "not_paid")
		if err != nil {
			return err
		}
		p := &d.Payments[i]
		if p.Status == "paid" {
			return fmt.Errorf("%w: installment %d already paid", ErrBadRequest, i)
		}
		paid := s.nowLocked().In(rome).Format(time.DateOnly)
		if ps.PaidDate != "" {
			if _, err := time.Parse(time.DateOnly, ps.PaidDate); err != nil {
				return fmt.Errorf("%w: paid_date %q", ErrBadRequest, ps.PaidDate)
			}
			paid = ps.PaidDate
		}
		if ps.Amount != nil && ps.Amount.LessThan(p.Amount) {
			if !ps.Amount.IsPositive() {
				return fmt.Errorf("%w: amount must be positive", ErrBadRequest)
			}
			rest := Payment{ID: s.newID(), Amount: p.Amount.Sub(*ps.Amount), DueDate: p.DueDate, Status: "not_paid"}
			p.Amount, p.Status, p.PaidDate = ps.Amount.Round(2), "paid", paid
			d.Payments = slices.Insert(d.Payments, i+1, rest)
			return nil
		}
		if ps.Amount != nil && ps.Amount.GreaterThan(p.Amount) {
			return fmt.Errorf("%w: amount %s exceeds the installment (%s)", ErrBadRequest, ps.Amount, p.Amount)
		}
		p.Status, p.PaidDate = "paid", paid
		return nil
	})
}

// Reverse marks a paid installment reversed (e.g. a bounced RiBa).
func (s *Server) Reverse(cid, id int64, idx *int) (Document, error) {
	return s.mutate(cid, id, func(c *company, d *Document) error {
		i, err := s.installment(d, idx, "paid")
		if err != nil {
			return err
		}
		if d.Payments[i].Status != "paid" {
			return fmt.Errorf("%w: installment %d is not paid", ErrBadRequest, i)
		}
		d.Payments[i].Status, d.Payments[i].PaidDate = "reversed", ""
		return nil
	})
}

// SetDueDate moves an installment's due date.
func (s *Server) SetDueDate(cid, id int64, idx int, due string) (Document, error) {
	return s.mutate(cid, id, func(c *company, d *Document) error {
		if idx < 0 || idx >= len(d.Payments) {
			return fmt.Errorf("%w: installment %d out of range", ErrBadRequest, idx)
		}
		if _, err := time.Parse(time.DateOnly, due); err != nil {
			return fmt.Errorf("%w: due_date %q", ErrBadRequest, due)
		}
		d.Payments[idx].DueDate = due
		return nil
	})
}

// DeleteDocument moves a document to the bin and notifies webhooks.
func (s *Server) DeleteDocument(cid, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, d, err := s.docLocked(cid, id)
	if err != nil {
		return err
	}
	c.remove(id)
	c.bin[id] = d
	s.recordLocked(c, id, "delete", nil)
	s.notifyLocked(c, d.Type, "delete", id)
	return nil
}
