package dunningapp

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incasso-io/incasso/internal/policy"
)

// `dunning render` prints every letter of the policy with the policy's
// creditor, and refuses a broken template with its file and line.
func TestRenderCommand(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	y := strings.Replace(string(policy.DefaultYAML()), "creditor: {}", `creditor: {address: "Corso Italia 3, 10121 Torino (TO)", signature: "Ufficio legale"}`, 1)
	if err := os.WriteFile(pol, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Command(context.Background(), []string{"render"}, []string{"DUNNING_POLICY_FILE=" + pol}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"stage courtesy", "stage first_reminder", "stage second_reminder", "stage formal_notice", "(PEC)",
		"Corso Italia 3, 10121 Torino (TO)", "Ufficio legale", "Diffida ad adempiere", "IBAN"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("render lacks %q", w)
		}
	}
	if strings.Contains(out.String(), "stage handoff") {
		t.Error("the hand-off has no letter")
	}
	tpl := filepath.Join(dir, "letters")
	_ = os.Mkdir(tpl, 0o700)
	_ = os.WriteFile(filepath.Join(tpl, "formal_notice.it.txt"), []byte("{{define \"subject\"}}x{{end}}\n{{define \"body\"}}{{.Nope}}{{end}}"), 0o600)
	err := Command(context.Background(), []string{"render", "-stage", "formal_notice"}, []string{"DUNNING_TEMPLATES_DIR=" + tpl}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "formal_notice.it.txt:2") {
		t.Fatalf("broken template: %v", err)
	}
}
