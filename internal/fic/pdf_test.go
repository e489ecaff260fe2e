package fic_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
)

// A document's PDF comes through FIC's temporary link, and only from FIC:
// a link to another host, a redirect off FIC, something that is not a
// PDF, or an expired link is refused.
func TestDocumentPDF(t *testing.T) {
	sim, base := startSim(t, ficsim.Config{Companies: 1, Invoices: 3, Quotas: ficsim.QuotaConfig{Off: true}})
	cid := sim.CompanyIDs()[0]
	docs, _ := sim.Documents(cid)
	c := simClient(t, base, fic.StaticToken(sim.Token()))
	ctx := context.Background()
	if _, err := c.DocumentPDF(ctx, cid, docs[0].ID); !errors.Is(err, fic.ErrNoPDF) {
		t.Fatalf("the spec example's bare file name: %v, want ErrNoPDF", err)
	}
	sim.SetFilesURL(base)
	pdf, err := c.DocumentPDF(ctx, cid, docs[0].ID)
	if err != nil || !strings.HasPrefix(string(pdf), "%PDF-") || !strings.Contains(string(pdf), fmt.Sprintf("Fattura n. %d", docs[0].Number)) {
		t.Fatalf("PDF: %v %.80q", err, pdf)
	}
	// A link read now and used after it expired.
	d, err := c.GetIssuedDocument(ctx, cid, docs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	sim.Advance(ficsim.FileLinkTTL + time.Minute)
	resp, err := http.Get(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired link: HTTP %d", resp.StatusCode)
	}
	tampered := strings.Replace(d.URL, "sig=", "sig=0", 1)
	if resp, _ := http.Get(tampered); resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered link accepted")
	}

	// FIC serving links it should not: each is refused without a request
	// to the named host.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("fetched %s", r.URL)
	}))
	defer evil.Close()
	var link string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/c/"):
			fmt.Fprintf(w, `{"data":{"id":7,"type":"invoice","number":1,"date":"2026-11-01","url":%q}}`, link)
		case r.URL.Path == "/redirect":
			http.Redirect(w, r, evil.URL+"/x.pdf", http.StatusFound)
		case r.URL.Path == "/html":
			fmt.Fprint(w, "<html>not a pdf</html>")
		}
	}))
	defer api.Close()
	ac := simClient(t, api.URL, fic.StaticToken("t"))
	for _, l := range []string{evil.URL + "/x.pdf", "http://169.254.169.254/latest/meta-data", "https://evil.example/x.pdf",
		"file:///etc/passwd", api.URL + "/redirect", api.URL + "/html"} {
		link = l
		if _, err := ac.DocumentPDF(ctx, 1, 7); err == nil {
			t.Errorf("link %s: downloaded", l)
		}
	}
}
