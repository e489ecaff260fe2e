package layout_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/incasso-io/incasso/"

// deps returns the packages pkg depends on, transitively.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestImportRules(t *testing.T) {
	transport := []string{"github.com/nats-io/", "net/http", "golang.org/x/oauth2", "github.com/cloudevents/"}
	for _, tc := range []struct {
		pkg       string
		ours      []string // the only packages of ours it may import (directly or not)
		transport bool     // whether it may depend on a transport
	}{
		{"internal/receivables", nil, false},
		{"internal/poller", []string{"internal/receivables"}, false},
		{"internal/dunning", []string{"internal/receivables", "internal/calendar", "internal/interest", "internal/policy"}, false},
		{"internal/ficsim", []string{"internal/receivables", "internal/fic/filter"}, true},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			for _, d := range deps(t, tc.pkg) {
				if d == module+tc.pkg {
					continue
				}
				if rest, ours := strings.CutPrefix(d, module); ours && !slices.Contains(tc.ours, rest) {
					t.Errorf("%s depends on %s", tc.pkg, rest)
				}
				for _, p := range transport {
					if !tc.transport && strings.HasPrefix(d, p) {
						t.Errorf("%s depends on a transport: %s", tc.pkg, d)
					}
				}
			}
		})
	}
}

// The app packages are wired only by the commands (and the load harness
// and fault tests that run them).
func TestOnlyCommandsWireTheApps(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		if strings.HasPrefix(pkg, "cmd/") {
			continue
		}
		for _, imp := range f[1:] {
			if rest, _ := strings.CutPrefix(imp, module); rest == "internal/pollerapp" || rest == "internal/dunningapp" || strings.HasPrefix(rest, "cmd/") {
				t.Errorf("%s imports %s: only commands wire the apps", pkg, rest)
			}
		}
	}
}
