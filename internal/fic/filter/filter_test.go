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

// TestOfficialGrammar pins Parse to fattureincloud/api-filter's
// ApiFilter.g4: what FIC accepts, and what it refuses that a looser parser
// (this package's before it followed the grammar) let through.
func TestOfficialGrammar(t *testing.T) {
	accept := map[string]string{
		"entity.name = 'x' AND number > 1": "entity.name = 'x' and number > 1",
		"a = 1 OR b = 2":                   "a = 1 or b = 2",
		"a IS NULL":                        "a is null",
		"a IS NOT NULL":                    "a is not null",
		"a = NULL":                         "a is null",
		"a <> null":                        "a is not null",
		"a != null":                        "a is not null",
		"a LIKE 'x%'":                      "a like 'x%'",
		"a NOT CONTAINS 'x'":               "a not contains 'x'",
		"a startswith 'x'":                 "a starts with 'x'",
		"a STARTS   WITH 'x'":              "a starts with 'x'",
		"a ends WITH 'x'":                  "a ends with 'x'",
		"a = ''":                           "a = ''",
		"a = ''''":                         "a = ''''",
		"a = 12.50":                        "a = 12.5",
		"is_marked = true":                 "is_marked = true",
		"andy = 1 and orb = 2":             "andy = 1 and orb = 2",
		"ei_data.vat_kind = 'I'":           "ei_data.vat_kind = 'I'",
		"(a = 1 or b = 2) and\tc = 3":      "(a = 1 or b = 2) and c = 3",
		"a = 1 or b = 2 and c = 3":         "a = 1 or (b = 2 and c = 3)",
		"next_due_date >= '2026-01-01' and a = 0.5": "next_due_date >= '2026-01-01' and a = 0.5",
	}
	for q, want := range accept {
		e, err := filter.Parse(q)
		if err != nil {
			t.Errorf("Parse(%q): %v, FIC accepts it", q, err)
			continue
		}
		if e.String() != want {
			t.Errorf("Parse(%q) = %q, want %q", q, e.String(), want)
		}
	}
	for _, q := range []string{
		"a = 1 And b = 2",     // keywords are all lowercase or all uppercase
		"a = 1 Or b = 2",      //
		"a Is null",           //
		"a = TRUE",            // booleans are lowercase only
		"a = True",            //
		"a = -1",              // numbers are unsigned
		"a = +1",              //
		"a = .5",              //
		"a = 1.",              //
		"a = 1e3",             // no exponent
		"address_line2 = 'x'", // no digits in field names
		"_a = 1",              // fields start with a letter
		"a_ = 1",              // and end with one
		"a. = 1",              //
		"Entity.id = 1",       // lowercase only
		"a like 1",            // patterns take a string
		"a starts with 1",     //
		"a >= null",           // null only with =, <>, !=, is
		"a Like 'x'",          //
		"a not like",          //
		"a = 1 and",           //
	} {
		if _, err := filter.Parse(q); !errors.Is(err, filter.ErrSyntax) {
			t.Errorf("Parse(%q): got %v, want ErrSyntax (FIC refuses it)", q, err)
		}
	}
}

// TestBuilderNeverEmitsWhatFICRefuses: the builder panics (a programming
// error) instead of producing a filter FIC answers with 400, and Check
// catches hand-built expressions.
func TestBuilderNeverEmitsWhatFICRefuses(t *testing.T) {
	for name, build := range map[string]func(){
		"negative number": func() { filter.Where("amount_gross", filter.Gt, -5) },
		"negative decimal": func() {
			filter.Where("amount_gross", filter.Lt, decimal.RequireFromString("-0.5"))
		},
		"digit in field":   func() { filter.Where("line2", filter.Eq, "x") },
		"trailing _":       func() { filter.Where("date_", filter.Eq, "x") },
		"null with >":      func() { filter.Where("next_due_date", filter.Gt, nil) },
		"pattern + number": func() { filter.Where("entity.name", filter.Like, 5) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			build()
		})
	}
	for _, e := range []filter.Expr{
		filter.And{},
		filter.Cond{Field: "a1", Op: filter.Eq, Value: filter.Int(1)},
		filter.Cond{Field: "a", Op: filter.Gt, Value: filter.Int(-1)},
	} {
		if err := filter.Check(e); !errors.Is(err, filter.ErrSyntax) {
			t.Errorf("Check(%#v) = %v, want ErrSyntax", e, err)
		}
	}
	if err := filter.Check(filter.Where("next_due_date", filter.IsNotNull, nil)); err != nil {
		t.Error(err)
	}
}
