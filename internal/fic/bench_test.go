package fic_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
)

// BenchmarkDecodePage measures decoding one list page of 100 detailed
// invoices as ficsim renders them (what a scan pays per page on top of
// the request). docs/s is the figure that matters.
func BenchmarkDecodePage(b *testing.B) {
	sim, srv := ficsimtest.Start(b, ficsim.Config{Seed: 1, Companies: 1, Invoices: 100, Token: "t"})
	url := fmt.Sprintf("%s/c/%d/issued_documents?type=invoice&fieldset=detailed&per_page=100&page=1", srv.URL, sim.CompanyIDs()[0])
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("page: %d %v", resp.StatusCode, err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	var docs int
	for b.Loop() {
		p, err := fic.DecodePage(raw, 1)
		if err != nil || len(p.Errors) > 0 || len(p.Documents) != 100 {
			b.Fatalf("decode: %v, %d errors, %d documents", err, len(p.Errors), len(p.Documents))
		}
		docs += len(p.Documents)
	}
	b.ReportMetric(float64(docs)/b.Elapsed().Seconds(), "docs/s")
}
