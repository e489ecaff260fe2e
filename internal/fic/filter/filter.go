// Package filter builds, parses and evaluates Fatture in Cloud's `q` query
// filter language (the subset documented at
// developers.fattureincloud.it/docs/basics/additional-capabilities/filter-results).
//
// The client uses the builder so values are always quoted correctly (a quote
// inside a string is doubled); ficsim uses the parser and Eval so the sandbox
// answers filtered lists the way FIC does. Keeping both in one package means
// String and Parse are tested (and fuzzed) as inverses.
//
// The grammar is FIC's own, fattureincloud/api-filter grammar/ApiFilter.g4
// (parse.go follows it token for token):
//
//	expr    = term { ("or"|"OR") term }
//	term    = factor { ("and"|"AND") factor }
//	factor  = "(" expr ")" | cond
//	cond    = field op value
//	        | field ("="|"is"|"IS") null | field ("<>"|"!="|"is not") null
//	        | field patop string
//	op      = "=" | "<>" | "!=" | ">" | ">=" | "<" | "<="
//	patop   = like | not like | contains | not contains | starts with | ends with
//	value   = 'string' | true | false | digits | digits "." digits
//	field   = [a-z] ( [a-z_.]* [a-z] )?
//
// Keywords are all lowercase or all uppercase; true and false only
// lowercase. Numbers are unsigned and field names have no digits, so Where
// panics on a negative number or such a field (programming errors). There
// is no date literal: dates compare as strings ('2025-01-01').
package filter

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/shopspring/decimal"
)

// ErrSyntax is wrapped by every Parse error.
var ErrSyntax = errors.New("filter: syntax error")

// Op is a comparison or pattern operator.
type Op string

// Operators.
const (
	Eq          Op = "="
	Ne          Op = "<>"
	Gt          Op = ">"
	Gte         Op = ">="
	Lt          Op = "<"
	Lte         Op = "<="
	Like        Op = "like"
	NotLike     Op = "not like"
	Contains    Op = "contains"
	NotContains Op = "not contains"
	StartsWith  Op = "starts with"
	EndsWith    Op = "ends with"
	IsNull      Op = "is null"
	IsNotNull   Op = "is not null"
)

func (o Op) isPattern() bool {
	switch o {
	case Like, NotLike, Contains, NotContains, StartsWith, EndsWith:
		return true
	}
	return false
}

// Kind is the type of a literal.
type Kind int

// Literal kinds.
const (
	KindNull Kind = iota
	KindString
	KindNumber
	KindBool
)

// Value is a literal in a condition or a field value during Eval.
type Value struct {
	Kind Kind
	Str  string
	Num  decimal.Decimal
	Bool bool
}

// Literal constructors.
func Str(s string) Value          { return Value{Kind: KindString, Str: s} }
func Num(d decimal.Decimal) Value { return Value{Kind: KindNumber, Num: d} }
func Int(n int64) Value           { return Value{Kind: KindNumber, Num: decimal.NewFromInt(n)} }
func Bool(b bool) Value           { return Value{Kind: KindBool, Bool: b} }
func Null() Value                 { return Value{} }
func (v Value) IsNull() bool      { return v.Kind == KindNull }
func quote(s string) string       { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
func fieldOK(f string) bool       { return fieldRE.MatchString(f) }

// fieldRE is the grammar's FIELD token: lowercase letters with '_' and
// '.' inside, no digits.
var fieldRE = regexp.MustCompile(`^[a-z]([a-z_.]*[a-z])?$`)

// String renders the literal as FIC expects it.
func (v Value) String() string {
	switch v.Kind {
	case KindString:
		return quote(v.Str)
	case KindNumber:
		return v.Num.String()
	case KindBool:
		if v.Bool {
			return "true"
		}
		return "false"
	}
	return "null"
}

// compare orders two non-null values of the same kind; -2 means incomparable.
func (v Value) compare(w Value) int {
	if v.Kind != w.Kind {
		return -2
	}
	switch v.Kind {
	case KindString:
		return strings.Compare(v.Str, w.Str)
	case KindNumber:
		return v.Num.Cmp(w.Num)
	case KindBool:
		if v.Bool == w.Bool {
			return 0
		}
		return -2
	}
	return 0
}

// Expr is a parsed or built filter expression.
type Expr interface {
	// String renders the expression in FIC syntax, ready to be URL-encoded.
	String() string
	// Eval reports whether a record matches; get returns a field's value
	// (ok=false for a field the record does not have, which reads as null).
	Eval(get func(field string) (Value, bool)) bool
	fields(yield func(string))
}

// Cond is one `field op value` triplet.
type Cond struct {
	Field string
	Op    Op
	Value Value
}

// And is a conjunction; Or is a disjunction.
type (
	And []Expr
	Or  []Expr
)

// Where builds a condition. v may be a string, an integer, a decimal, a bool,
// nil (null), or anything with a String() method (e.g. a civil date), which is
// compared as a string. It panics on a malformed field or operator, which are
// programming errors; use Parse for untrusted input.
func Where(field string, op Op, v any) Cond {
	if !fieldOK(field) {
		panic(fmt.Sprintf("filter: invalid field name %q", field))
	}
	var val Value
	switch x := v.(type) {
	case nil:
		val = Null()
	case string:
		val = Str(x)
	case int:
		val = Int(int64(x))
	case int64:
		val = Int(x)
	case decimal.Decimal:
		val = Num(x)
	case bool:
		val = Bool(x)
	case fmt.Stringer:
		val = Str(x.String())
	default:
		panic(fmt.Sprintf("filter: unsupported value type %T", v))
	}
	if op.isPattern() && val.Kind != KindString {
		panic(fmt.Sprintf("filter: operator %q needs a string", op))
	}
	if val.Kind == KindNumber && val.Num.IsNegative() {
		panic(fmt.Sprintf("filter: FIC's grammar has no negative numbers (%s %s %s)", field, op, val.Num))
	}
	switch op {
	case IsNull, IsNotNull:
		val = Null()
	case Eq, Ne:
	default:
		if val.IsNull() {
			panic(fmt.Sprintf("filter: null compares only with =, <>, is null or is not null, not %q", op))
		}
	}
	return Cond{Field: field, Op: op, Value: val}
}

func (c Cond) String() string {
	switch c.Op {
	case IsNull, IsNotNull:
		return c.Field + " " + string(c.Op)
	}
	return c.Field + " " + string(c.Op) + " " + c.Value.String()
}

func (c Cond) fields(yield func(string)) { yield(c.Field) }

// Eval implements Expr.
func (c Cond) Eval(get func(string) (Value, bool)) bool {
	fv, ok := get(c.Field)
	if !ok {
		fv = Null()
	}
	op, lit := c.Op, c.Value
	if lit.IsNull() && (op == Eq || op == Ne) {
		if op == Eq {
			op = IsNull
		} else {
			op = IsNotNull
		}
	}
	switch op {
	case IsNull:
		return fv.IsNull()
	case IsNotNull:
		return !fv.IsNull()
	}
	if fv.IsNull() {
		return false // SQL semantics: comparisons with null are false
	}
	if op.isPattern() {
		s, p := strings.ToLower(valueText(fv)), strings.ToLower(lit.Str)
		switch op {
		case Like:
			return likeMatch(s, p)
		case NotLike:
			return !likeMatch(s, p)
		case Contains:
			return strings.Contains(s, p)
		case NotContains:
			return !strings.Contains(s, p)
		case StartsWith:
			return strings.HasPrefix(s, p)
		case EndsWith:
			return strings.HasSuffix(s, p)
		}
	}
	// A numeric field compared with a string literal (or vice versa) is
	// coerced the way MySQL does for digits-only text.
	if fv.Kind != lit.Kind {
		fv, lit = coerce(fv, lit)
	}
	r := fv.compare(lit)
	if r == -2 {
		return op == Ne
	}
	switch op {
	case Eq:
		return r == 0
	case Ne:
		return r != 0
	case Gt:
		return r > 0
	case Gte:
		return r >= 0
	case Lt:
		return r < 0
	case Lte:
		return r <= 0
	}
	return false
}

func valueText(v Value) string {
	if v.Kind == KindString {
		return v.Str
	}
	return v.String()
}

func coerce(a, b Value) (Value, Value) {
	toNum := func(v Value) (Value, bool) {
		if v.Kind == KindNumber {
			return v, true
		}
		if v.Kind == KindString {
			if d, err := decimal.NewFromString(v.Str); err == nil {
				return Num(d), true
			}
		}
		return v, false
	}
	if a.Kind == KindNumber || b.Kind == KindNumber {
		na, ok1 := toNum(a)
		nb, ok2 := toNum(b)
		if ok1 && ok2 {
			return na, nb
		}
	}
	return a, b
}

// likeMatch implements SQL LIKE: % any run, _ one character.
func likeMatch(s, p string) bool {
	sr, pr := []rune(s), []rune(p)
	var m func(i, j int) bool
	memo := map[[2]int]bool{}
	m = func(i, j int) bool {
		if j == len(pr) {
			return i == len(sr)
		}
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var r bool
		switch pr[j] {
		case '%':
			r = m(i, j+1) || (i < len(sr) && m(i+1, j))
		case '_':
			r = i < len(sr) && m(i+1, j+1)
		default:
			r = i < len(sr) && sr[i] == pr[j] && m(i+1, j+1)
		}
		memo[k] = r
		return r
	}
	return m(0, 0)
}

func join(es []Expr, sep string) string {
	parts := make([]string, len(es))
	for i, e := range es {
		s := e.String()
		switch e.(type) {
		case And, Or:
			s = "(" + s + ")"
		}
		parts[i] = s
	}
	return strings.Join(parts, sep)
}

func (a And) String() string { return join(a, " and ") }
func (o Or) String() string  { return join(o, " or ") }

// Eval implements Expr.
func (a And) Eval(get func(string) (Value, bool)) bool {
	for _, e := range a {
		if !e.Eval(get) {
			return false
		}
	}
	return true
}

// Eval implements Expr.
func (o Or) Eval(get func(string) (Value, bool)) bool {
	for _, e := range o {
		if e.Eval(get) {
			return true
		}
	}
	return false
}

func (a And) fields(y func(string)) {
	for _, e := range a {
		e.fields(y)
	}
}
func (o Or) fields(y func(string)) {
	for _, e := range o {
		e.fields(y)
	}
}

// Check reports whether FIC's grammar accepts the expression's rendering.
// The client calls it before sending, so a filter built by hand (a Cond
// literal, an empty And) fails here with a clear error instead of as a 400
// from FIC.
func Check(e Expr) error {
	s := e.String()
	if _, err := Parse(s); err != nil {
		return fmt.Errorf("filter %q: %w", s, err)
	}
	return nil
}

// Fields returns the field names an expression refers to, in order, with
// repeats. ficsim uses it to refuse unfilterable fields.
func Fields(e Expr) []string {
	var out []string
	e.fields(func(s string) { out = append(out, s) })
	return out
}
