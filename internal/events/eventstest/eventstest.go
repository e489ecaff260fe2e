// Package eventstest validates event data against the published JSON
// Schemas in docs/schemas, so the docs and the code cannot drift apart.
// Imported only by tests.
package eventstest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// RepoRoot finds the module root from the test's working directory.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found")
		}
		dir = parent
	}
}

// Schema compiles docs/schemas/<name>.
func Schema(tb testing.TB, name string) *jsonschema.Schema {
	tb.Helper()
	path := filepath.Join(RepoRoot(tb), "docs", "schemas", name)
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(path, doc); err != nil {
		tb.Fatal(err)
	}
	// The other schemas, under their $id, for references between them.
	others, _ := filepath.Glob(filepath.Join(RepoRoot(tb), "docs", "schemas", "*.json"))
	for _, o := range others {
		if o == path {
			continue
		}
		b, err := os.ReadFile(o)
		if err != nil {
			tb.Fatal(err)
		}
		od, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			tb.Fatalf("%s: %v", o, err)
		}
		if m, ok := od.(map[string]any); ok {
			if id, ok := m["$id"].(string); ok {
				if err := c.AddResource(id, od); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	s, err := c.Compile(path)
	if err != nil {
		tb.Fatalf("compile %s: %v", name, err)
	}
	return s
}

// Validate checks one event's data bytes against a schema.
func Validate(tb testing.TB, s *jsonschema.Schema, data []byte) {
	tb.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		tb.Fatalf("event data is not JSON: %v", err)
	}
	if err := s.Validate(v); err != nil {
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, data, "", "  ")
		tb.Fatalf("event data does not match %s: %v\n%s", s.Location, err, pretty.String())
	}
}
