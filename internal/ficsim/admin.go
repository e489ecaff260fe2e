package ficsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"crypto/x509"
	"encoding/base64"
	"encoding/pem"

	"github.com/shopspring/decimal"
)

// Admin errors.
var (
	ErrNoCompany  = errors.New("ficsim: no such company")
	ErrNoDocument = errors.New("ficsim: no such document")
	ErrBadRequest = errors.New("ficsim: bad request")
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
func (s *Server) CreateDocument(cid int64, nd NewDocument) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return nil, err
	}
	today := s.nowLocked().In(rome)
	date := today
	if nd.Date != "" {
		if date, err = time.ParseInLocation(time.DateOnly, nd.Date, rome); err != nil {
			return nil, fmt.Errorf("%w: date %q", ErrBadRequest, nd.Date)
		}
	}
	var d *Document
	switch nd.Type {
	case "", "invoice":
		cl := c.Clients[s.rnd.IntN(len(c.Clients))]
		if nd.ClientID != 0 {
			i := slices.IndexFunc(c.Clients, func(x Client) bool { return x.ID == nd.ClientID })
			if i < 0 {
				return nil, fmt.Errorf("%w: no client %d", ErrBadRequest, nd.ClientID)
			}
			cl = c.Clients[i]
		}
		d = s.newInvoice(s.rnd, c, cl, date, today, false)
		if nd.AmountNet != nil || nd.VATRate != nil || nd.Installments > 0 || len(nd.DueDates) > 0 {
			if err := s.reprice(d, nd.AmountNet, nd.VATRate, max(nd.Installments, len(nd.DueDates)), nd.DueDates); err != nil {
				c.remove(d.ID)
				return nil, err
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
			return nil, fmt.Errorf("%w: no invoice to credit", ErrBadRequest)
		}
		d = s.newCreditNote(s.rnd, c, inv, today)
	default:
		return nil, fmt.Errorf("%w: type %q", ErrBadRequest, nd.Type)
	}
	d.CreatedAt, d.UpdatedAt = s.nowLocked(), s.nowLocked()
	s.recordLocked(c, d.ID, "create", d)
	s.notifyLocked(c, d.Type, "create", d.ID)
	return renderDetailed(d), nil
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
func (s *Server) UpdateDocument(cid, id int64, u DocumentUpdate) (map[string]any, error) {
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

func (s *Server) mutate(cid, id int64, f func(*company, *Document) error) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, d, err := s.docLocked(cid, id)
	if err != nil {
		return nil, err
	}
	next := d.clone()
	if err := f(c, next); err != nil {
		return nil, err
	}
	next.UpdatedAt = s.nowLocked()
	c.docs[id] = next
	s.recordLocked(c, id, "update", next)
	s.notifyLocked(c, next.Type, "update", id)
	return renderDetailed(next), nil
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
func (s *Server) Pay(cid, id int64, ps PaymentSpec) (map[string]any, error) {
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
func (s *Server) Reverse(cid, id int64, idx *int) (map[string]any, error) {
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
func (s *Server) SetDueDate(cid, id int64, idx int, due string) (map[string]any, error) {
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

// DocumentCount returns how many live documents a company has.
func (s *Server) DocumentCount(cid int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.comps[cid]; ok {
		return len(c.docs)
	}
	return 0
}

// Prerender renders every live document's detailed form into its cache,
// as serving it would. A load generator calls it before timing a scan so
// that the sandbox, which shares the machine with what is measured, does
// not charge FIC's own rendering to the poller. It returns how many
// documents were rendered.
func (s *Server) Prerender() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.comps {
		for _, d := range c.docs {
			renderJSON(d, detailedView)
			n++
		}
	}
	return n
}

// InvoiceIDs returns the ids of a company's live invoices, those with an
// installment not paid and those fully paid, ordered by id. Unlike
// Documents it renders nothing, so a load generator picking what to change
// does not hold the server's lock for long.
func (s *Server) InvoiceIDs(cid int64) (open, paid []int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range c.order {
		if d := c.docs[id]; d.Type == "invoice" {
			if d.NextDueDate() != "" {
				open = append(open, id)
			} else {
				paid = append(paid, id)
			}
		}
	}
	return open, paid, nil
}

// Documents returns the ground truth: every live document of a company in
// detailed form, ordered by id.
func (s *Server) Documents(cid int64) ([]map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, renderDetailed(c.docs[id]))
	}
	return out, nil
}

// SetFaults replaces the active faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// SetScanFault arms a one-shot fault: when page `page` of a list is served,
// "insert" creates a new invoice first, "delete" deletes the first document
// of the listed type first (shifting every later page by one).
func (s *Server) SetScanFault(cid int64, kind string, page int) error {
	if kind != "insert" && kind != "delete" {
		return fmt.Errorf("%w: scan fault %q: want insert or delete", ErrBadRequest, kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.companyLocked(cid)
	if err != nil {
		return err
	}
	c.scanFaultAt[kind] = page
	return nil
}

func (s *Server) applyScanFault(c *company, typ string, page int) {
	if p, ok := c.scanFaultAt["insert"]; ok && p == page {
		delete(c.scanFaultAt, "insert")
		today := s.nowLocked().In(rome)
		d := s.newInvoice(s.rnd, c, c.Clients[s.rnd.IntN(len(c.Clients))], today, today, false)
		s.recordLocked(c, d.ID, "create", d)
		s.notifyLocked(c, d.Type, "create", d.ID)
	}
	if p, ok := c.scanFaultAt["delete"]; ok && p == page {
		delete(c.scanFaultAt, "delete")
		for _, id := range c.order {
			if d := c.docs[id]; d.Type == typ {
				c.remove(id)
				c.bin[id] = d
				s.recordLocked(c, id, "delete", nil)
				s.notifyLocked(c, d.Type, "delete", id)
				break
			}
		}
	}
}

// SetQuotas replaces the quota configuration and resets the counters.
func (s *Server) SetQuotas(q QuotaConfig) {
	q.setDefaults()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.qcfg = q
	for _, c := range s.comps {
		c.quota = &quotaState{}
	}
}

// Stats returns request counts per company and endpoint.
func (s *Server) Stats() map[int64]map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int64]map[string]int, len(s.stats))
	for c, m := range s.stats {
		cp := make(map[string]int, len(m))
		for k, v := range m {
			cp[k] = v
		}
		out[c] = cp
	}
	return out
}

// ResetStats zeroes the request counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	s.stats = map[int64]map[string]int{}
	s.mu.Unlock()
}

// Advance moves the sandbox clock forward (negative moves it back).
func (s *Server) Advance(d time.Duration) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
	return s.nowLocked()
}

// ---- HTTP admin API under /_sim/ ----

func (s *Server) adminRoutes(mux *http.ServeMux) {
	adminErr := func(w http.ResponseWriter, err error) {
		switch {
		case errors.Is(err, ErrNoCompany), errors.Is(err, ErrNoDocument):
			writeError(w, http.StatusNotFound, "", err.Error())
		default:
			writeError(w, http.StatusBadRequest, "", err.Error())
		}
	}
	decode := func(w http.ResponseWriter, r *http.Request, v any) bool {
		if r.ContentLength == 0 {
			return true
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			writeError(w, http.StatusBadRequest, "", "invalid JSON body: "+err.Error())
			return false
		}
		return true
	}
	ids := func(w http.ResponseWriter, r *http.Request) (int64, int64, bool) {
		cid, ok1 := pathInt(r, "cid")
		id, ok2 := pathInt(r, "id")
		if !ok1 || (r.PathValue("id") != "" && !ok2) {
			writeError(w, http.StatusBadRequest, "", "company and document ids must be positive integers")
			return 0, 0, false
		}
		return cid, id, true
	}
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			adminErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": v})
	}

	mux.HandleFunc("GET /_sim/companies", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		var out []map[string]any
		for _, id := range s.ids {
			c := s.comps[id]
			out = append(out, map[string]any{"id": id, "name": c.Name, "vat_number": c.VATNumber, "documents": len(c.docs), "bin": len(c.bin), "clients": len(c.Clients)})
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"data": out, "token": s.cfg.Token})
	})
	mux.HandleFunc("GET /_sim/companies/{cid}/documents", func(w http.ResponseWriter, r *http.Request) {
		if cid, _, ok := ids(w, r); ok {
			v, err := s.Documents(cid)
			reply(w, v, err)
		}
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/documents", func(w http.ResponseWriter, r *http.Request) {
		var nd NewDocument
		if cid, _, ok := ids(w, r); ok && decode(w, r, &nd) {
			v, err := s.CreateDocument(cid, nd)
			reply(w, v, err)
		}
	})
	mux.HandleFunc("PATCH /_sim/companies/{cid}/documents/{id}", func(w http.ResponseWriter, r *http.Request) {
		var u DocumentUpdate
		if cid, id, ok := ids(w, r); ok && decode(w, r, &u) {
			v, err := s.UpdateDocument(cid, id, u)
			reply(w, v, err)
		}
	})
	mux.HandleFunc("DELETE /_sim/companies/{cid}/documents/{id}", func(w http.ResponseWriter, r *http.Request) {
		if cid, id, ok := ids(w, r); ok {
			reply(w, map[string]any{"deleted": id}, s.DeleteDocument(cid, id))
		}
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/documents/{id}/restore", func(w http.ResponseWriter, r *http.Request) {
		if cid, id, ok := ids(w, r); ok {
			d, err := s.RestoreDocument(cid, id)
			if err != nil {
				adminErr(w, err)
				return
			}
			reply(w, renderDetailed(d), nil)
		}
	})
	mux.HandleFunc("GET /_sim/companies/{cid}/history", func(w http.ResponseWriter, r *http.Request) {
		cid, _, ok := ids(w, r)
		if !ok {
			return
		}
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		h, err := s.History(cid, after)
		if err != nil {
			adminErr(w, err)
			return
		}
		out := make([]map[string]any, len(h))
		for i, e := range h {
			out[i] = map[string]any{"seq": e.Seq, "at": e.At.UTC(), "id": e.ID, "op": e.Op}
			if e.State != nil {
				out[i]["state"] = renderDetailed(e.State)
			}
		}
		reply(w, out, nil)
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/documents/{id}/pay", func(w http.ResponseWriter, r *http.Request) {
		var ps PaymentSpec
		if cid, id, ok := ids(w, r); ok && decode(w, r, &ps) {
			v, err := s.Pay(cid, id, ps)
			reply(w, v, err)
		}
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/documents/{id}/reverse", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Installment *int `json:"installment"`
		}
		if cid, id, ok := ids(w, r); ok && decode(w, r, &body) {
			v, err := s.Reverse(cid, id, body.Installment)
			reply(w, v, err)
		}
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/documents/{id}/due_date", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Installment int    `json:"installment"`
			DueDate     string `json:"due_date"`
		}
		if cid, id, ok := ids(w, r); ok && decode(w, r, &body) {
			v, err := s.SetDueDate(cid, id, body.Installment, body.DueDate)
			reply(w, v, err)
		}
	})
	mux.HandleFunc("POST /_sim/companies/{cid}/scan_fault", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Kind string `json:"kind"`
			Page int    `json:"page"`
		}
		if cid, _, ok := ids(w, r); ok && decode(w, r, &body) {
			reply(w, body, s.SetScanFault(cid, body.Kind, body.Page))
		}
	})
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"data": s.currentFaults()})
	})
	mux.HandleFunc("PUT /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if decode(w, r, &f) {
			for _, p := range []float64{f.ErrorRatio, f.RateLimitRatio, f.DropRatio, f.MalformedRatio, f.TruncateRatio, f.DuplicateWebhookRatio} {
				if p < 0 || p > 1 {
					writeError(w, http.StatusBadRequest, "", "ratios must be within [0,1]")
					return
				}
			}
			s.SetFaults(f)
			writeJSON(w, http.StatusOK, map[string]any{"data": f})
		}
	})
	mux.HandleFunc("PUT /_sim/quotas", func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			Off              bool `json:"off"`
			Hourly           int  `json:"hourly"`
			Monthly          int  `json:"monthly"`
			ShortTerm        int  `json:"short_term"`
			HourlyWindowSecs int  `json:"hourly_window_seconds"`
			ShortWindowSecs  int  `json:"short_window_seconds"`
		}
		if decode(w, r, &q) {
			qc := QuotaConfig{Off: q.Off, Hourly: q.Hourly, Monthly: q.Monthly, ShortTerm: q.ShortTerm,
				HourlyWindow: time.Duration(q.HourlyWindowSecs) * time.Second, ShortWindow: time.Duration(q.ShortWindowSecs) * time.Second}
			s.SetQuotas(qc)
			writeJSON(w, http.StatusOK, map[string]any{"data": q})
		}
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		st := s.Stats()
		out := map[string]map[string]int{}
		total := 0
		for c, m := range st {
			out[strconv.FormatInt(c, 10)] = m
			for _, n := range m {
				total += n
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": out, "total": total})
	})
	mux.HandleFunc("DELETE /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/clock", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"now": s.now().UTC().Format(time.RFC3339)})
	})
	mux.HandleFunc("POST /_sim/clock", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Advance string `json:"advance"`
		}
		if !decode(w, r, &body) {
			return
		}
		d, err := time.ParseDuration(body.Advance)
		if err != nil {
			writeError(w, http.StatusBadRequest, "", "advance: want a Go duration like 24h")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"now": s.Advance(d).UTC().Format(time.RFC3339)})
	})
	mux.HandleFunc("POST /_sim/tokens/revoke", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Token string `json:"token"`
		}
		if !decode(w, r, &body) {
			return
		}
		if !s.RevokeToken(body.Token) {
			writeError(w, http.StatusNotFound, "", "unknown token")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/webhooks/deliveries", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"data": s.Deliveries()})
	})
	mux.HandleFunc("GET /_sim/webhook_key", func(w http.ResponseWriter, r *http.Request) {
		p, err := s.WebhookPublicKeyPEM()
		if err != nil {
			writeError(w, http.StatusInternalServerError, "", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"pem": p, "base64": base64.StdEncoding.EncodeToString([]byte(p))})
	})
}

// WebhookPublicKeyPEM returns the webhook verification key as PEM.
func (s *Server) WebhookPublicKeyPEM() (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&s.cfg.WebhookKey.PublicKey)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}
