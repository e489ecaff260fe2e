package ficsim_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
)

// FIC's bin: a deleted document is in the bin, POST …/recover brings it
// back (and notifies), DELETE removes it for good; the history records
// every change with the state after it.
func TestBinRecoverAndDeleteAndHistory(t *testing.T) {
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 3, Companies: 1, Invoices: 5})
	cid := sim.CompanyIDs()[0]
	m, err := sim.CreateDocument(cid, ficsim.NewDocument{Installments: 1})
	if err != nil {
		t.Fatal(err)
	}
	id := m.ID
	base := fmt.Sprintf("%s/c/%d", srv.URL, cid)
	tok := sim.Token()
	if err := sim.DeleteDocument(cid, id); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := call(t, "GET", fmt.Sprintf("%s/issued_documents/%d", base, id), tok, ""); code != http.StatusNotFound {
		t.Fatalf("deleted document: HTTP %d", code)
	}
	if code, _, _ := call(t, "GET", fmt.Sprintf("%s/bin/issued_documents/%d", base, id), tok, ""); code != http.StatusOK {
		t.Fatalf("bin: HTTP %d", code)
	}
	if code, _, _ := call(t, "POST", fmt.Sprintf("%s/bin/issued_documents/%d/recover", base, id), tok, ""); code != http.StatusOK {
		t.Fatalf("recover: HTTP %d", code)
	}
	if code, _, _ := call(t, "GET", fmt.Sprintf("%s/issued_documents/%d", base, id), tok, ""); code != http.StatusOK {
		t.Fatalf("recovered document: HTTP %d", code)
	}
	if code, _, _ := call(t, "POST", fmt.Sprintf("%s/bin/issued_documents/%d/recover", base, id), tok, ""); code != http.StatusNotFound {
		t.Fatalf("recovering a document not in the bin: HTTP %d", code)
	}
	// Deleted for good: gone from the bin too, and cannot be recovered.
	if err := sim.DeleteDocument(cid, id); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := call(t, "DELETE", fmt.Sprintf("%s/bin/issued_documents/%d", base, id), tok, ""); code != http.StatusOK {
		t.Fatalf("delete from the bin: HTTP %d", code)
	}
	if code, _, _ := call(t, "GET", fmt.Sprintf("%s/bin/issued_documents/%d", base, id), tok, ""); code != http.StatusNotFound {
		t.Fatalf("purged document still in the bin: HTTP %d", code)
	}
	if _, err := sim.RestoreDocument(cid, id); err == nil {
		t.Fatal("a purged document was restored")
	}
	h, err := sim.History(cid, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, e := range h {
		ops = append(ops, e.Op)
		if (e.Op == "delete") != (e.State == nil) {
			t.Errorf("%s recorded with state %v", e.Op, e.State != nil)
		}
	}
	if fmt.Sprint(ops) != "[create delete restore delete]" {
		t.Fatalf("history %v", ops)
	}
	// Over the admin API too.
	code, _, body := call(t, "GET", fmt.Sprintf("%s/_sim/companies/%d/history?after=%d", srv.URL, cid, h[1].Seq), "", "")
	if code != 200 || len(body["data"].([]any)) != 2 {
		t.Fatalf("admin history: HTTP %d %v", code, body)
	}
}
