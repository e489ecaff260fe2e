package events_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/events/eventstest"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

// The public docs list every event type the code can publish.
func TestDocsListEveryEventType(t *testing.T) {
	root := eventstest.RepoRoot(t)
	for _, f := range []string{"docs/events.md", "docs/asyncapi.yaml", "docs/schemas/invoice-event.v1.json"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "docs/schemas/invoice-event.v1.json" {
			continue
		}
		for _, typ := range rcv.AllEventTypes {
			if !strings.Contains(string(b), string(typ)) {
				t.Errorf("%s does not document %s", f, typ)
			}
		}
		for _, typ := range events.AllDunningTypes {
			if !strings.Contains(string(b), strings.TrimPrefix(typ, "dunning.")) {
				t.Errorf("%s does not document %s", f, typ)
			}
		}
	}
}

// The id rule written in docs/events.md is the one the code uses, and
// every built event carries ce-docseq.
func TestDocumentedIDRule(t *testing.T) {
	c := sampleChange()
	subj, e, err := events.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("v2|%d|%d|%d|%s", c.Invoice.CompanyID, c.Invoice.ID, c.Seq, c.Type)))
	if want := hex.EncodeToString(h[:16]); e.ID() != want {
		t.Fatalf("ce-id %s, the documented rule gives %s", e.ID(), want)
	}
	m, err := events.Encode(subj, e)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("ce-docseq"); got != fmt.Sprint(c.Seq) {
		t.Fatalf("ce-docseq %q", got)
	}
	c.Seq = 0
	if _, _, err := events.Build(c); err == nil {
		t.Fatal("a transition without a sequence number was built")
	}
}
