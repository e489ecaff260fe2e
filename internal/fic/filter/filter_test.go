package filter_test

import (
	"errors"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/incasso-io/incasso/internal/fic/filter"
	"github.com/incasso-io/incasso/internal/receivables"
)

func TestBuilderQuotes(t *testing.T) {
	tests := []struct {
		name string
		expr filter.Expr
		want string
	}{
		{"string", filter.Where("vat_number", filter.Eq, "11553420156"), "vat_number = '11553420156'"},
		{"quote doubled", filter.Where("entity.name", filter.Eq, "L'Aquila S.r.l."), "entity.name = 'L''Aquila S.r.l.'"},
		{"int", filter.Where("number", filter.Gte, 10), "number >= 10"},
		{"decimal", filter.Where("amount_gross", filter.Gt, decimal.RequireFromString("1000.50")), "amount_gross > 1000.5"},
		{"date as string", filter.Where("date", filter.Gte, receivables.MustDate("2025-01-01")), "date >= '2025-01-01'"},
		{"null", filter.Where("next_due_date", filter.IsNotNull, nil), "next_due_date is not null"},
		{"pattern", filter.Where("entity.name", filter.Contains, "rossi"), "entity.name contains 'rossi'"},
		{"nested", filter.And{filter.Where("date", filter.Gte, "2025-01-01"), filter.Or{filter.Where("number", filter.Eq, 1), filter.Where("number", filter.Eq, 2)}},
			"date >= '2025-01-01' and (number = 1 or number = 2)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.expr.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			back, err := filter.Parse(tc.expr.String())
			if err != nil {
				t.Fatalf("Parse(String()): %v", err)
			}
			if back.String() != tc.want {
				t.Errorf("round trip: got %q, want %q", back.String(), tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, q := range []string{
		"", "date >=", "date = 'open", "(date = '1'", "date = '1')", "date ~ 1", "date is maybe null",
		"entity.name like 5", "date > null", "Date = 1", "a = 1 and", "a = 1 or or b = 2", "a starts 'x'", "a != ",
	} {
		if _, err := filter.Parse(q); !errors.Is(err, filter.ErrSyntax) {
			t.Errorf("Parse(%q): got %v, want ErrSyntax", q, err)
		}
	}
}

func TestEval(t *testing.T) {
	rec := map[string]filter.Value{
		"date":          filter.Str("2026-03-15"),
		"number":        filter.Int(42),
		"amount_gross":  filter.Num(decimal.RequireFromString("1220.00")),
		"entity.name":   filter.Str("L'Aquila Trasporti S.r.l."),
		"next_due_date": filter.Null(),
	}
	get := func(f string) (filter.Value, bool) { v, ok := rec[f]; return v, ok }
	tests := []struct {
		q    string
		want bool
	}{
		{"date >= '2026-01-01'", true},
		{"date < '2026-01-01'", false},
		{"number = 42 and amount_gross > 1000", true},
		{"number = 41 or amount_gross = 1220", true},
		{"(number = 41 or number = 40) and date > '2000-01-01'", false},
		{"entity.name = 'L''Aquila Trasporti S.r.l.'", true},
		{"entity.name like 'l''aquila%'", true},
		{"entity.name like '%trasp_rti%'", true},
		{"entity.name not like '%rossi%'", true},
		{"entity.name contains 'TRASPORTI'", true},
		{"entity.name starts with 'L'''", true},
		{"entity.name ends with 'srl'", false},
		{"next_due_date is null", true},
		{"next_due_date = null", true},
		{"next_due_date != null", false},
		{"next_due_date > '2026-01-01'", false},
		{"unknown_field is null", true},
		{"number = '42'", true},
		{"number_x is not null OR number = 42", true},
	}
	for _, tc := range tests {
		e, err := filter.Parse(tc.q)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.q, err)
			continue
		}
		if got := e.Eval(get); got != tc.want {
			t.Errorf("Eval(%q): got %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestFields(t *testing.T) {
	e, err := filter.Parse("a = 1 and (b.c = 2 or d is null)")
	if err != nil {
		t.Fatal(err)
	}
	got := filter.Fields(e)
	if len(got) != 3 || got[0] != "a" || got[1] != "b.c" || got[2] != "d" {
		t.Errorf("got %v", got)
	}
}

// FuzzParse: Parse never panics, and what it accepts renders to a string
// that parses to the same rendering (String and Parse are inverses).
func FuzzParse(f *testing.F) {
	for _, s := range []string{"a = 1", "entity.name = 'L''x'", "(a = 1 or b != 'x') and c is not null", "d like '%x_'", "n >= -1.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		e, err := filter.Parse(q)
		if err != nil {
			return
		}
		s := e.String()
		e2, err := filter.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) ok but Parse(String()=%q): %v", q, s, err)
		}
		if e2.String() != s {
			t.Fatalf("unstable rendering: %q -> %q", s, e2.String())
		}
	})
}
