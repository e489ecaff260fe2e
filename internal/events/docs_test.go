package events_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	}
}
