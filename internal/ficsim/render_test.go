package ficsim_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
)

// Served documents are rendered once per version and cached: after every
// kind of edit, the list (both projections) and the single GET must show
// the new version, identical to a fresh rendering of the ground truth.
func TestServedDocumentsFollowEveryEdit(t *testing.T) {
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 5, Companies: 1, Invoices: 30, Now: fixedNow, Quotas: ficsim.QuotaConfig{Off: true}})
	cid := sim.CompanyIDs()[0]
	tok := sim.Token()
	docs, _ := sim.Documents(cid)
	var id int64
	for _, d := range docs {
		if d.Type == "invoice" && d.Open() && len(d.Payments) > 0 {
			id = d.ID
			break
		}
	}
	if id == 0 {
		t.Fatal("no open invoice in the seed")
	}
	normal := func(v any) any { // the JSON a client would decode
		b, _ := json.Marshal(v)
		var out any
		_ = json.Unmarshal(b, &out)
		return out
	}
	check := func(step string) {
		t.Helper()
		// The ground truth, rendered afresh by the admin API.
		_, _, truth := call(t, "GET", fmt.Sprintf("%s/_sim/companies/%d/documents", srv.URL, cid), "", "")
		var want any
		for _, d := range truth["data"].([]any) {
			if int64(d.(map[string]any)["id"].(float64)) == id {
				want = normal(d)
			}
		}
		_, _, got := call(t, "GET", fmt.Sprintf("%s/c/%d/issued_documents/%d", srv.URL, cid, id), tok, "")
		if !reflect.DeepEqual(normal(got["data"]), want) {
			t.Fatalf("%s: GET serves %v, want %v", step, got["data"], want)
		}
		_, _, list := call(t, "GET", fmt.Sprintf("%s/c/%d/issued_documents?type=invoice&fieldset=detailed&per_page=100&sort=id", srv.URL, cid), tok, "")
		found := false
		for _, d := range list["data"].([]any) {
			if int64(d.(map[string]any)["id"].(float64)) == id {
				found = true
				if !reflect.DeepEqual(normal(d), want) {
					t.Fatalf("%s: detailed list serves %v, want %v", step, d, want)
				}
			}
		}
		if !found {
			t.Fatalf("%s: document %d missing from the list", step, id)
		}
		_, _, basic := call(t, "GET", fmt.Sprintf("%s/c/%d/issued_documents?type=invoice&per_page=100&sort=id", srv.URL, cid), tok, "")
		for _, d := range basic["data"].([]any) {
			m := d.(map[string]any)
			if int64(m["id"].(float64)) == id && !reflect.DeepEqual(m["next_due_date"], want.(map[string]any)["next_due_date"]) {
				t.Fatalf("%s: basic list next_due_date %v, want %v", step, m["next_due_date"], want.(map[string]any)["next_due_date"])
			}
		}
	}
	check("as seeded")
	part := decimal.RequireFromString("1.00")
	steps := []struct {
		name string
		edit func() error
	}{
		{"partial payment", func() error { _, err := sim.Pay(cid, id, ficsim.PaymentSpec{Amount: &part}); return err }},
		{"due date moved", func() error { _, err := sim.SetDueDate(cid, id, 1, "2027-03-31"); return err }},
		{"subject edited", func() error {
			s := "Consulenza <Q4> & \"extra\""
			_, err := sim.UpdateDocument(cid, id, ficsim.DocumentUpdate{Subject: &s})
			return err
		}},
		{"paid in full", func() error {
			for {
				m, err := sim.Pay(cid, id, ficsim.PaymentSpec{})
				if err != nil || !m.Open() {
					return err
				}
			}
		}},
		{"payment reversed", func() error { _, err := sim.Reverse(cid, id, nil); return err }},
	}
	for _, s := range steps {
		if err := s.edit(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		check(s.name)
	}
}
