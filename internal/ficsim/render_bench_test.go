package ficsim

import "testing"

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
