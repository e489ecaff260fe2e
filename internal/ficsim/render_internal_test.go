package ficsim

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The API serves the typed wire structs; the admin API and the fields
// projection use the maps. Both must carry the same JSON for every
// document: invoices and credit notes, split payment, e-invoice data, paid,
// partially paid and reversed installments, documents in the bin.
func TestWireStructsMatchTheMaps(t *testing.T) {
	s, err := New(Config{Seed: 3, Companies: 1, Invoices: 600})
	if err != nil {
		t.Fatal(err)
	}
	cid := s.CompanyIDs()[0]
	c := s.comps[cid]
	// Edits of every kind, so the ledger holds each shape.
	n := 0
	for _, id := range append([]int64(nil), c.order...) {
		d := c.docs[id]
		if d.Type != "invoice" || d.NextDueDate() == "" {
			continue
		}
		switch n % 3 {
		case 0:
			_, err = s.Pay(cid, id, PaymentSpec{})
		case 1:
			if _, err = s.Pay(cid, id, PaymentSpec{}); err == nil {
				_, err = s.Reverse(cid, id, nil)
			}
		case 2:
			err = s.DeleteDocument(cid, id)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 30 {
			break
		}
	}
	generic := func(b []byte) any {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	var docs []*Document
	for _, id := range c.order {
		docs = append(docs, c.docs[id])
	}
	for _, d := range c.bin {
		docs = append(docs, d)
	}
	shapes := map[string]bool{}
	for _, d := range docs {
		for _, p := range []projection{basicView, detailedView} {
			want := renderBasic(d)
			if p == detailedView {
				want = renderDetailed(d)
			}
			got := generic(renderJSON(d, p))
			if w := generic(encodeJSON(want)); !reflect.DeepEqual(got, w) {
				t.Fatalf("document %d, projection %d:\n wire %v\n maps %v", d.ID, p, got, w)
			}
		}
		shapes[d.Type] = true
		if d.RefNumber != "" {
			shapes["ei_data"] = true
		}
		if d.SplitPayment {
			shapes["split_payment"] = true
		}
		for _, p := range d.Payments {
			shapes[p.Status] = true
		}
	}
	for _, s := range []string{"invoice", "credit_note", "ei_data", "split_payment", "paid", "not_paid", "reversed"} {
		if !shapes[s] {
			t.Errorf("the ledger has no %s document: the comparison does not cover it", s)
		}
	}
	if len(c.bin) == 0 {
		t.Error("no document in the bin")
	}
}

// BenchmarkRenderDetailed measures the first rendering of a document
// version (what an initial sync pays per document; rescans hit the cache).
func BenchmarkRenderDetailed(b *testing.B) {
	s, err := New(Config{Seed: 1, Companies: 1, Invoices: 1000})
	if err != nil {
		b.Fatal(err)
	}
	c := s.comps[s.CompanyIDs()[0]]
	docs := make([]*Document, 0, len(c.order))
	for _, id := range c.order {
		docs = append(docs, c.docs[id])
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d := docs[i%len(docs)]
		d.rendered = [numProjections][]byte{}
		if len(renderJSON(d, detailedView)) == 0 {
			b.Fatal("empty")
		}
	}
}
