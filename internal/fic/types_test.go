package fic_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/receivables"
)

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The spec's own examples, copied into testdata, decode into our types.
func TestDecodeSpecGetExample(t *testing.T) {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(mustRead(t, "testdata/spec_get_issued_document.json"), &env); err != nil {
		t.Fatal(err)
	}
	d, err := fic.DecodeDocument(env.Data)
	if err != nil {
		t.Fatalf("DecodeDocument: %v", err)
	}
	if d.ID != 12345 || d.Type != "receipt" || d.Numeration != "rec123" {
		t.Errorf("identity: got %d %q %q", d.ID, d.Type, d.Numeration)
	}
	if got, want := d.AmountGross.Decimal.String(), "75"; got != want || !d.AmountGross.Valid {
		t.Errorf("amount_gross: got %s, want %s", got, want)
	}
	if got, want := d.AmountNet.Decimal.String(), "68.18"; got != want {
		t.Errorf("amount_net: got %s, want %s", got, want)
	}
	if d.Date != receivables.MustDate("2021-08-20") {
		t.Errorf("date: got %v", d.Date)
	}
	if len(d.PaymentsList) != 1 {
		t.Fatalf("payments_list: got %d items", len(d.PaymentsList))
	}
	p := d.PaymentsList[0]
	if p.Status != fic.StatusNotPaid || p.DueDate != receivables.MustDate("2020-08-23") || !p.PaidDate.IsZero() || *p.ID != 69078013 {
		t.Errorf("installment: got %+v", p)
	}
	if d.Entity == nil || d.Entity.CertifiedEmail != "mary@pec.red.com" || d.Entity.VATNumber != "IT05432181211" {
		t.Errorf("entity: got %+v", d.Entity)
	}
	if d.Currency == nil || !d.Currency.ExchangeRate.Equal(decimal.NewFromInt(1)) {
		t.Errorf("currency: got %+v", d.Currency)
	}
	// "2021-08-23 05:34:20" has no zone: Europe/Rome (CEST, UTC+2).
	if want := time.Date(2021, 8, 23, 3, 34, 20, 0, time.UTC); !d.UpdatedAt.Equal(want) {
		t.Errorf("updated_at: got %v, want %v", d.UpdatedAt.UTC(), want)
	}
}

func TestDecodeSpecListAndCompaniesExamples(t *testing.T) {
	var env struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(mustRead(t, "testdata/spec_list_issued_documents.json"), &env); err != nil {
		t.Fatal(err)
	}
	for _, raw := range env.Data {
		d, err := fic.DecodeDocument(raw)
		if err != nil {
			t.Fatalf("DecodeDocument: %v", err)
		}
		if d.PaymentsList != nil {
			t.Errorf("doc %d: payments_list null must decode as nil", d.ID)
		}
		if !d.NextDueDate.After(d.Date) {
			t.Errorf("doc %d: next_due_date %v", d.ID, d.NextDueDate)
		}
	}
	// The companies example carries vat_number as a JSON number.
	var comp struct {
		Data struct {
			Companies []fic.Company `json:"companies"`
		} `json:"data"`
	}
	if err := json.Unmarshal(mustRead(t, "testdata/spec_list_user_companies.json"), &comp); err != nil {
		t.Fatalf("companies: %v", err)
	}
	if got := comp.Data.Companies[0].VATNumber; got != "3881520161" {
		t.Errorf("vat_number as number: got %q", got)
	}
	if n := len(comp.Data.Companies[0].ControlledCompanies); n != 2 {
		t.Errorf("controlled companies: got %d, want 2", n)
	}
}

func TestDecodeDocumentTolerance(t *testing.T) {
	d, err := fic.DecodeDocument([]byte(`{"id": 7, "amount_gross": null, "entity": null, "payments_list": [
		{"id": 1, "amount": "100.10", "due_date": "2026-01-31", "status": null, "paid_date": null},
		{"id": 2, "amount": 99999999.99, "due_date": "2026-02-28", "status": "paid", "paid_date": "2026-02-20"}],
		"brand_new_field": {"x": [1,2,3]}, "created_at": "", "ei_status": null}`))
	if err != nil {
		t.Fatalf("DecodeDocument: %v", err)
	}
	if d.AmountGross.Valid {
		t.Error("null amount_gross must stay invalid, not zero")
	}
	if d.PaymentsList[0].Status != fic.StatusNotPaid {
		t.Errorf("null status defaults to not_paid, got %q", d.PaymentsList[0].Status)
	}
	// Exact decimal, no float rounding.
	if got := d.PaymentsList[1].Amount.Decimal.String(); got != "99999999.99" {
		t.Errorf("amount: got %s", got)
	}
}

func TestDecodeDocumentMalformed(t *testing.T) {
	tests := []struct {
		name, body, wantInErr string
	}{
		{"amount not a number", `{"id": 42, "amount_gross": "12,50 EUR"}`, "42"},
		{"installment amount null", `{"id": 43, "payments_list": [{"id":1, "amount": null, "due_date": "2026-01-01"}]}`, "payments_list[0].amount"},
		{"unknown status", `{"id": 44, "payments_list": [{"id":1, "amount": 1, "status": "maybe"}]}`, `"maybe"`},
		{"impossible date", `{"id": 45, "date": "2026-02-30"}`, "2026-02-30"},
		{"bad timestamp", `{"id": 46, "updated_at": "yesterday"}`, "yesterday"},
		{"missing id", `{"amount_gross": 1}`, "id"},
		{"truncated", `{"id": 47, "amount_gross": 1`, "47"},
		{"not an object", `[1,2]`, "?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fic.DecodeDocument([]byte(tc.body))
			if err == nil {
				t.Fatal("got nil error")
			}
			if !errors.Is(err, fic.ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			var de *fic.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError", err)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantInErr)
			}
		})
	}
}

func FuzzDecodeDocument(f *testing.F) {
	f.Add([]byte(`{"id": 1, "amount_gross": 10.5, "payments_list": [{"amount": 10.5, "due_date": "2026-01-01", "status": "paid"}]}`))
	f.Add([]byte(`{"id": "x"}`))
	f.Add([]byte(`{"id": 3, "entity": {"vat_number": 123, "id": null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := fic.DecodeDocument(b)
		if err != nil {
			if !errors.Is(err, fic.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if d.ID <= 0 {
			t.Fatalf("accepted a document without a positive id")
		}
		for _, p := range d.PaymentsList {
			if !p.Amount.Valid {
				t.Fatalf("accepted an installment without amount")
			}
		}
	})
}

// String fields FIC sends as strings, numbers or null decode alike, with
// escapes and non-ASCII text intact (the fast path must not change them).
func TestFlexStringAndTimestampDecoding(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"IT01234567890"`, "IT01234567890"},
		{`3881520161`, "3881520161"},
		{`null`, ""},
		{`""`, ""},
		{`"Via \"Roma\" 1"`, `Via "Roma" 1`},
		{`"Caff\u00e8 Nerò"`, "Caffè Nerò"},
		{`"a\\b\/c\n"`, "a\\b/c\n"},
	} {
		var got struct {
			V fic.FlexString `json:"v"`
		}
		if err := json.Unmarshal([]byte(`{"v":`+tc.in+`}`), &got); err != nil || string(got.V) != tc.want {
			t.Errorf("FlexString %s = %q, %v; want %q", tc.in, got.V, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: `"2026-03-29 02:30:00"`, want: time.Date(2026, 3, 29, 2, 30, 0, 0, receivables.Rome)},
		{in: `"2026-07-01 12:00:00"`, want: time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)},
		{in: `"2026-07-01T12:00:00Z"`, want: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)},
		{in: `"2026-07-01 12:00:00\u0000"`, bad: true},
		{in: `null`},
		{in: `""`},
		{in: `"yesterday"`, bad: true},
		{in: `12`, bad: true},
	} {
		var got fic.Timestamp
		err := json.Unmarshal([]byte(tc.in), &got)
		if tc.bad {
			if err == nil {
				t.Errorf("Timestamp %s: no error", tc.in)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("Timestamp %s = %v, %v; want %v", tc.in, got.Time, err, tc.want)
		}
	}
}
