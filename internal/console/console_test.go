package console

import (
	"testing"

	"github.com/shopspring/decimal"
)

// Every page template parses with the layout and the functions.
func TestTemplatesParse(t *testing.T) {
	c := &Console{}
	c.init()
	if len(c.tpl) != 8 {
		t.Fatalf("%d templates", len(c.tpl))
	}
}

func TestEuroAndNext(t *testing.T) {
	for in, want := range map[string]string{"0": "€ 0,00", "1234567.891": "€ 1.234.567,89", "999.5": "€ 999,50"} {
		if got := euro(mustDec(in)); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{"/console/cases?x=1": "/console/cases?x=1", "//evil.example": "/console/", "https://evil.example/console/": "/console/", "/console/\\\\evil": "/console/", "": "/console/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
	if csvSafe("=HYPERLINK(1)") != "'=HYPERLINK(1)" || csvSafe("Rossi") != "Rossi" {
		t.Error("csvSafe")
	}
}

func mustDec(s string) decimal.Decimal { return decimal.RequireFromString(s) }
