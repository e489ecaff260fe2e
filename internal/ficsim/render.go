package ficsim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/fic/filter"
)

func num(d decimal.Decimal) json.Number { return json.Number(d.String()) }

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func renderEntity(c Client, full bool) map[string]any {
	e := map[string]any{
		"id": c.ID, "name": c.Name, "vat_number": c.VATNumber, "tax_code": c.TaxCode,
		"address_street": c.Street, "address_postal_code": c.PostalCode, "address_city": c.City,
		"address_province": c.Province, "address_extra": "", "country": c.Country,
		"certified_email": c.PEC, "ei_code": c.EICode,
	}
	if full {
		e["code"] = c.Code
		e["type"] = c.Type
		e["first_name"] = c.FirstName
		e["last_name"] = c.LastName
		e["country_iso"] = c.CountryISO
		e["email"] = c.Email
		e["phone"] = c.Phone
	}
	return e
}

// renderBasic is the default list fieldset, as in the spec's list example:
// no payments_list, no timestamps.
func renderBasic(d *Document) map[string]any {
	return map[string]any{
		"id": d.ID, "type": d.Type, "numeration": d.Numeration, "subject": d.Subject, "visible_subject": d.Subject,
		"amount_net": num(d.Net), "amount_vat": num(d.VAT), "amount_gross": num(d.Gross), "amount_due_discount": 0,
		"entity": renderEntity(d.Client, false), "date": d.Date, "number": d.Number,
		"next_due_date": nullable(d.NextDueDate()), "url": fmt.Sprintf("doc%d.pdf", d.ID),
		"items_list": nil, "payments_list": nil,
	}
}

var languageNames = map[string]string{"it": "Italiano", "en": "English"}

// renderDetailed is fieldset=detailed and the single GET.
func renderDetailed(d *Document) map[string]any {
	m := renderBasic(d)
	y := 0
	if len(d.Date) >= 4 {
		fmt.Sscanf(d.Date[:4], "%d", &y)
	}
	m["year"] = y
	m["entity"] = renderEntity(d.Client, true)
	m["currency"] = map[string]any{"id": d.Currency, "exchange_rate": "1.00000", "symbol": "€"}
	m["language"] = map[string]any{"code": d.Language, "name": languageNames[d.Language]}
	m["amount_withholding_tax"] = num(d.Withholding)
	m["amount_rivalsa"], m["amount_cassa"], m["amount_other_withholding_tax"], m["stamp_duty"] = 0, 0, 0, 0
	m["use_split_payment"] = d.SplitPayment
	m["use_gross_prices"] = false
	m["e_invoice"] = d.EInvoice
	m["ei_status"] = nullable(d.EIStatus)
	if d.RefNumber != "" {
		m["ei_data"] = map[string]any{"invoice_number": d.RefNumber, "invoice_date": d.RefDate}
	}
	m["is_marked"] = false
	m["locked"] = false
	m["notes"] = ""
	m["seen_date"] = nil
	m["created_at"] = d.CreatedAt.In(rome).Format(time.DateTime)
	m["updated_at"] = d.UpdatedAt.In(rome).Format(time.DateTime)
	pl := make([]map[string]any, len(d.Payments))
	for i, p := range d.Payments {
		pl[i] = map[string]any{
			"id": p.ID, "amount": num(p.Amount), "due_date": p.DueDate, "status": p.Status,
			"paid_date": nullable(p.PaidDate), "payment_terms": map[string]any{"days": 30, "type": "standard"},
		}
	}
	m["payments_list"] = pl
	m["items_list"] = []any{}
	return m
}

// projection is a cached rendering of a document (see renderJSON).
type projection int

const (
	basicView    projection = iota // the list default
	detailedView                   // fieldset=detailed and the single GET
	numProjections
)

// renderJSON returns d's JSON in a projection, rendered once per document
// version: a scan re-reads every page, and re-encoding unchanged documents
// was a third of the sandbox's CPU in load runs. It encodes the typed wire
// structs below, which carry exactly the fields, values and nulls of
// renderBasic/renderDetailed (the admin API's typed maps; a test holds the
// two equal on a whole seeded ledger) at a fraction of the cost of encoding
// maps. Call it with s.mu held; the returned bytes must not be modified.
func renderJSON(d *Document, p projection) json.RawMessage {
	if b := d.rendered[p]; b != nil {
		return b
	}
	var b json.RawMessage
	if p == detailedView {
		b = encodeJSON(detailedWire(d))
	} else {
		b = encodeJSON(basicWire(d))
	}
	d.rendered[p] = b
	return b
}

type entityBasicJSON struct {
	ID                int64  `json:"id"`
	Name              string `json:"name"`
	VATNumber         string `json:"vat_number"`
	TaxCode           string `json:"tax_code"`
	AddressStreet     string `json:"address_street"`
	AddressPostalCode string `json:"address_postal_code"`
	AddressCity       string `json:"address_city"`
	AddressProvince   string `json:"address_province"`
	AddressExtra      string `json:"address_extra"`
	Country           string `json:"country"`
	CertifiedEmail    string `json:"certified_email"`
	EICode            string `json:"ei_code"`
}

type entityFullJSON struct {
	entityBasicJSON
	Code       string `json:"code"`
	Type       string `json:"type"`
	FirstName  string `json:"first_name"`
	LastName   string `json:"last_name"`
	CountryISO string `json:"country_iso"`
	Email      string `json:"email"`
	Phone      string `json:"phone"`
}

// docCommonJSON is what both projections share.
type docCommonJSON struct {
	ID                int64       `json:"id"`
	Type              string      `json:"type"`
	Numeration        string      `json:"numeration"`
	Subject           string      `json:"subject"`
	VisibleSubject    string      `json:"visible_subject"`
	AmountNet         json.Number `json:"amount_net"`
	AmountVAT         json.Number `json:"amount_vat"`
	AmountGross       json.Number `json:"amount_gross"`
	AmountDueDiscount int         `json:"amount_due_discount"`
	Date              string      `json:"date"`
	Number            int         `json:"number"`
	NextDueDate       *string     `json:"next_due_date"`
	URL               string      `json:"url"`
}

type docBasicJSON struct {
	docCommonJSON
	Entity       entityBasicJSON `json:"entity"`
	ItemsList    []struct{}      `json:"items_list"`    // null in the list default
	PaymentsList []paymentJSON   `json:"payments_list"` // null in the list default
}

type paymentJSON struct {
	ID           int64       `json:"id"`
	Amount       json.Number `json:"amount"`
	DueDate      string      `json:"due_date"`
	Status       string      `json:"status"`
	PaidDate     *string     `json:"paid_date"`
	PaymentTerms struct {
		Days int    `json:"days"`
		Type string `json:"type"`
	} `json:"payment_terms"`
}

type docDetailedJSON struct {
	docCommonJSON
	Entity       entityFullJSON `json:"entity"`
	ItemsList    []struct{}     `json:"items_list"`
	PaymentsList []paymentJSON  `json:"payments_list"`
	Year         int            `json:"year"`
	Currency     struct {
		ID           string `json:"id"`
		ExchangeRate string `json:"exchange_rate"`
		Symbol       string `json:"symbol"`
	} `json:"currency"`
	Language struct {
		Code string `json:"code"`
		Name string `json:"name"`
	} `json:"language"`
	AmountWithholdingTax      json.Number `json:"amount_withholding_tax"`
	AmountRivalsa             int         `json:"amount_rivalsa"`
	AmountCassa               int         `json:"amount_cassa"`
	AmountOtherWithholdingTax int         `json:"amount_other_withholding_tax"`
	StampDuty                 int         `json:"stamp_duty"`
	UseSplitPayment           bool        `json:"use_split_payment"`
	UseGrossPrices            bool        `json:"use_gross_prices"`
	EInvoice                  bool        `json:"e_invoice"`
	EIStatus                  *string     `json:"ei_status"`
	EIData                    *struct {
		InvoiceNumber string `json:"invoice_number"`
		InvoiceDate   string `json:"invoice_date"`
	} `json:"ei_data,omitempty"`
	IsMarked  bool    `json:"is_marked"`
	Locked    bool    `json:"locked"`
	Notes     string  `json:"notes"`
	SeenDate  *string `json:"seen_date"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
}

func nullableStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func entityBasicWire(c *Client) entityBasicJSON {
	return entityBasicJSON{ID: c.ID, Name: c.Name, VATNumber: c.VATNumber, TaxCode: c.TaxCode, AddressStreet: c.Street,
		AddressPostalCode: c.PostalCode, AddressCity: c.City, AddressProvince: c.Province, Country: c.Country,
		CertifiedEmail: c.PEC, EICode: c.EICode}
}

func commonWire(d *Document) docCommonJSON {
	return docCommonJSON{ID: d.ID, Type: d.Type, Numeration: d.Numeration, Subject: d.Subject, VisibleSubject: d.Subject,
		AmountNet: num(d.Net), AmountVAT: num(d.VAT), AmountGross: num(d.Gross), Date: d.Date, Number: d.Number,
		NextDueDate: nullableStr(d.NextDueDate()), URL: "doc" + strconv.FormatInt(d.ID, 10) + ".pdf"}
}

func basicWire(d *Document) *docBasicJSON {
	return &docBasicJSON{docCommonJSON: commonWire(d), Entity: entityBasicWire(&d.Client)}
}

func detailedWire(d *Document) *docDetailedJSON {
	c := &d.Client
	w := &docDetailedJSON{docCommonJSON: commonWire(d),
		Entity: entityFullJSON{entityBasicJSON: entityBasicWire(c), Code: c.Code, Type: c.Type, FirstName: c.FirstName,
			LastName: c.LastName, CountryISO: c.CountryISO, Email: c.Email, Phone: c.Phone},
		ItemsList: []struct{}{}, PaymentsList: make([]paymentJSON, len(d.Payments)),
		AmountWithholdingTax: num(d.Withholding), UseSplitPayment: d.SplitPayment, EInvoice: d.EInvoice,
		EIStatus: nullableStr(d.EIStatus), CreatedAt: d.CreatedAt.In(rome).Format(time.DateTime),
		UpdatedAt: d.UpdatedAt.In(rome).Format(time.DateTime)}
	if len(d.Date) >= 4 {
		w.Year, _ = strconv.Atoi(d.Date[:4])
	}
	w.Currency.ID, w.Currency.ExchangeRate, w.Currency.Symbol = d.Currency, "1.00000", "€"
	w.Language.Code, w.Language.Name = d.Language, languageNames[d.Language]
	if d.RefNumber != "" {
		w.EIData = &struct {
			InvoiceNumber string `json:"invoice_number"`
			InvoiceDate   string `json:"invoice_date"`
		}{d.RefNumber, d.RefDate}
	}
	for i, p := range d.Payments {
		pw := &w.PaymentsList[i]
		pw.ID, pw.Amount, pw.DueDate, pw.Status, pw.PaidDate = p.ID, num(p.Amount), p.DueDate, p.Status, nullableStr(p.PaidDate)
		pw.PaymentTerms.Days, pw.PaymentTerms.Type = 30, "standard"
	}
	return w
}

// encodeJSON encodes like writeJSON, without the trailing newline.
func encodeJSON(v any) json.RawMessage {
	buf := encodeBufs.Get().(*bytes.Buffer)
	defer encodeBufs.Put(buf)
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("ficsim: render: %v", err)) // maps of plain values always encode
	}
	// An exact-size copy: renderings are cached for as long as the document
	// version lives, and growing a fresh buffer per document was the
	// sandbox's largest cost after GC.
	return bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

var encodeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// renderer picks the projection for fieldset/fields. list selects the list
// default (basic); a single GET defaults to detailed.
func renderer(fieldset, fields string, list bool) (func(*Document) json.RawMessage, error) {
	if fields != "" {
		want := map[string]bool{"id": true}
		for _, f := range strings.Split(fields, ",") {
			want[strings.TrimSpace(f)] = true
		}
		return func(d *Document) json.RawMessage {
			full := renderDetailed(d)
			out := make(map[string]any, len(want))
			for k := range want {
				if v, ok := full[k]; ok {
					out[k] = v
				}
			}
			return encodeJSON(out)
		}, nil
	}
	basic := func(d *Document) json.RawMessage { return renderJSON(d, basicView) }
	detailed := func(d *Document) json.RawMessage { return renderJSON(d, detailedView) }
	switch fieldset {
	case "":
		if list {
			return basic, nil
		}
		return detailed, nil
	case "basic":
		return basic, nil
	case "detailed", "fic_view":
		return detailed, nil
	}
	return nil, fmt.Errorf("the selected fieldset %q is invalid", fieldset)
}

// docGetter exposes a document's filterable fields to filter.Eval.
func docGetter(d *Document) func(string) (filter.Value, bool) {
	return func(f string) (filter.Value, bool) {
		switch f {
		case "id":
			return filter.Int(d.ID), true
		case "type":
			return filter.Str(d.Type), true
		case "entity.id":
			return filter.Int(d.Client.ID), true
		case "entity.name":
			return filter.Str(d.Client.Name), true
		case "date":
			return filter.Str(d.Date), true
		case "number":
			return filter.Int(int64(d.Number)), true
		case "numeration":
			return filter.Str(d.Numeration), true
		case "amount_net":
			return filter.Num(d.Net), true
		case "amount_gross":
			return filter.Num(d.Gross), true
		case "next_due_date":
			if n := d.NextDueDate(); n != "" {
				return filter.Str(n), true
			}
			return filter.Null(), true
		}
		return filter.Value{}, false
	}
}

type filterExpr = filter.Expr

func (s *Server) parseFilter(q string) (filter.Expr, error) {
	e, err := filter.Parse(q)
	if err != nil {
		return nil, err
	}
	if !s.cfg.LaxFilters {
		for _, f := range filter.Fields(e) {
			if !filterable[f] {
				return nil, fmt.Errorf("field %q is not filterable", f)
			}
		}
	}
	return e, nil
}

type sortKey struct {
	field string
	desc  bool
}

func (s *Server) parseSort(v string) ([]sortKey, error) {
	if v == "" {
		return nil, nil
	}
	var keys []sortKey
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		k := sortKey{field: strings.TrimPrefix(p, "-"), desc: strings.HasPrefix(p, "-")}
		if !sortable[k.field] && !s.cfg.LaxFilters {
			return nil, fmt.Errorf("the field %q is not sortable", k.field)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func sortDocs(ds []*Document, keys []sortKey) {
	slices.SortStableFunc(ds, func(a, b *Document) int {
		for _, k := range keys {
			var c int
			switch k.field {
			case "id":
				c = cmp.Compare(a.ID, b.ID)
			case "date":
				c = strings.Compare(a.Date, b.Date)
			case "number":
				c = cmp.Compare(a.Number, b.Number)
			case "numeration":
				c = strings.Compare(a.Numeration, b.Numeration)
			case "amount_net":
				c = a.Net.Cmp(b.Net)
			case "amount_gross":
				c = a.Gross.Cmp(b.Gross)
			case "next_due_date":
				c = strings.Compare(a.NextDueDate(), b.NextDueDate())
			case "entity.name":
				c = strings.Compare(a.Client.Name, b.Client.Name)
			}
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// onlyListFields reports whether a fields parameter names only list fields
// (payments_list, items_list).
func onlyListFields(fields string) bool {
	if fields == "" {
		return false
	}
	for _, f := range strings.Split(fields, ",") {
		switch strings.TrimSpace(f) {
		case "payments_list", "items_list":
		default:
			return false
		}
	}
	return true
}
