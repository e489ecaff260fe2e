package filter

import (
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// The lexer and parser follow fattureincloud/api-filter grammar/ApiFilter.g4
// token for token, because FIC parses q with it and refuses anything else:
//
//   - keywords are all lowercase or all uppercase (and, AND; And is an error);
//     true and false are lowercase only;
//   - FIELD is [a-z] ( [a-z_.]* [a-z] )? : no digits, no uppercase, no
//     leading or trailing '_' or '.';
//   - numbers are INT ([0-9]+) or INT '.' INT: no sign, no exponent;
//   - STRING is '' or a quoted run with '' for a quote;
//   - "starts with" and "ends with" are single tokens (spaces between the
//     two words, any case pairing of the two words' lower/upper forms);
//   - ANTLR's lexer takes the longest match, and on a tie the rule defined
//     first, which makes keywords win over a FIELD of the same length.

type tokKind int

const (
	tEOF tokKind = iota
	tField
	tString
	tInt
	tDot
	tOp // = > >= < <= <> !=
	tLParen
	tRParen
	tAnd
	tOr
	tNot
	tIs
	tNull
	tBool
	tLike
	tContains
	tStartsWith
	tEndsWith
	tStarts // lexed (the grammar has the token) but never valid in a filter
	tEnds
	tWith
)

type token struct {
	kind tokKind
	text string
	pos  int
}

// keywords maps each accepted spelling to its token. Only these exact
// spellings are keywords (the grammar's ('and' | 'AND') alternatives).
var keywords = map[string]tokKind{}

func init() {
	for w, k := range map[string]tokKind{
		"and": tAnd, "or": tOr, "not": tNot, "is": tIs, "null": tNull,
		"like": tLike, "contains": tContains, "starts": tStarts, "ends": tEnds, "with": tWith,
	} {
		keywords[w] = k
		keywords[strings.ToUpper(w)] = k
	}
	keywords["true"] = tBool
	keywords["false"] = tBool
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// fieldLen is the length of the longest FIELD match at s[i:] (0 if none).
func fieldLen(s string, i int) int {
	if i >= len(s) || !isLower(s[i]) {
		return 0
	}
	end, j := i+1, i+1
	for j < len(s) && (isLower(s[j]) || s[j] == '_' || s[j] == '.') {
		j++
		if isLower(s[j-1]) {
			end = j
		}
	}
	return end - i
}

// wordLen is the length of the run of ASCII letters at s[i:].
func wordLen(s string, i int) int {
	j := i
	for j < len(s) && (isLower(s[j]) || isUpper(s[j])) {
		j++
	}
	return j - i
}

// keywordAt returns the longest keyword token at s[i:]: a keyword spelled
// exactly, or "starts"/"ends" followed by spaces and "with" (one token).
func keywordAt(s string, i int) (tokKind, int) {
	n := wordLen(s, i)
	// A keyword is a prefix of the letter run, e.g. "AND" in "ANDY" (then
	// 'Y' fails to lex) or "is" in "is_marked" (then FIELD is longer).
	bestK, bestN := tEOF, 0
	for l := 1; l <= n; l++ {
		if k, ok := keywords[s[i:i+l]]; ok {
			bestK, bestN = k, l
		}
	}
	if bestK == tStarts || bestK == tEnds {
		j := i + bestN
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if w := wordLen(s, j); w >= 4 {
			if k, ok := keywords[s[j:j+4]]; ok && k == tWith {
				if bestK == tStarts {
					return tStartsWith, j + 4 - i
				}
				return tEndsWith, j + 4 - i
			}
		}
	}
	return bestK, bestN
}

func lex(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			out = append(out, token{tLParen, "(", i})
			i++
		case c == ')':
			out = append(out, token{tRParen, ")", i})
			i++
		case c == '.':
			out = append(out, token{tDot, ".", i})
			i++
		case c == '\'':
			start := i
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("%w: unterminated string at offset %d", ErrSyntax, start)
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			out = append(out, token{tString, b.String(), start})
		case c == '=' || c == '>' || c == '<' || c == '!':
			start := i
			op := string(c)
			if i+1 < len(s) && (s[i+1] == '=' && c != '=' || c == '<' && s[i+1] == '>') {
				op += string(s[i+1])
			}
			if op == "!" {
				return nil, fmt.Errorf("%w: unexpected '!' at offset %d", ErrSyntax, i)
			}
			i += len(op)
			out = append(out, token{tOp, op, start})
		case isDigit(c):
			start := i
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			out = append(out, token{tInt, s[start:i], start})
		case isLower(c) || isUpper(c):
			fl := fieldLen(s, i)
			k, kl := keywordAt(s, i)
			switch {
			case kl > 0 && kl >= fl:
				out = append(out, token{k, s[i : i+kl], i})
				i += kl
			case fl > 0:
				out = append(out, token{tField, s[i : i+fl], i})
				i += fl
			default:
				return nil, fmt.Errorf("%w: unexpected %q at offset %d (keywords are all lowercase or all uppercase, field names lowercase)", ErrSyntax, c, i)
			}
		default:
			return nil, fmt.Errorf("%w: unexpected %q at offset %d", ErrSyntax, c, i)
		}
	}
	return append(out, token{tEOF, "", len(s)}), nil
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

// Parse parses a `q` string with FIC's grammar. Errors wrap ErrSyntax and
// give the offset.
func Parse(q string) (Expr, error) {
	if len(q) > 4096 {
		return nil, fmt.Errorf("%w: filter longer than 4096 bytes", ErrSyntax)
	}
	toks, err := lex(q)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	e, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, fmt.Errorf("%w: unexpected %q at offset %d", ErrSyntax, t.text, t.pos)
	}
	return e, nil
}

const maxDepth = 32

// expr: and binds tighter than or (the grammar lists the conjunction
// alternative first, which gives it precedence in ANTLR).
func (p *parser) expr(depth int) (Expr, error) {
	var terms Or
	for {
		t, err := p.term(depth)
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
		if p.peek().kind != tOr {
			break
		}
		p.next()
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return terms, nil
}

func (p *parser) term(depth int) (Expr, error) {
	var fs And
	for {
		f, err := p.factor(depth)
		if err != nil {
			return nil, err
		}
		fs = append(fs, f)
		if p.peek().kind != tAnd {
			break
		}
		p.next()
	}
	if len(fs) == 1 {
		return fs[0], nil
	}
	return fs, nil
}

func (p *parser) factor(depth int) (Expr, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrSyntax, maxDepth)
	}
	if p.peek().kind == tLParen {
		p.next()
		e, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, fmt.Errorf("%w: want ')' at offset %d", ErrSyntax, c.pos)
		}
		return e, nil
	}
	return p.cond()
}

func (p *parser) cond() (Expr, error) {
	f := p.next()
	if f.kind != tField {
		return nil, fmt.Errorf("%w: want a field name (lowercase letters, '_' and '.') at offset %d, got %q", ErrSyntax, f.pos, f.text)
	}
	c := Cond{Field: f.text}
	t := p.next()
	switch t.kind {
	case tOp:
		c.Op = Op(t.text)
		if c.Op == "!=" {
			c.Op = Ne
		}
		if p.peek().kind == tNull {
			// emptyfield: FIELD (EQ | IS) NULL; filledfield: FIELD (NEQ | IS NOT) NULL
			p.next()
			switch c.Op {
			case Eq:
				c.Op = IsNull
			case Ne:
				c.Op = IsNotNull
			default:
				return nil, fmt.Errorf("%w: null compares only with =, <> or != (offset %d)", ErrSyntax, t.pos)
			}
			return c, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		c.Value = v
		return c, nil
	case tIs:
		c.Op = IsNull
		if p.peek().kind == tNot {
			p.next()
			c.Op = IsNotNull
		}
		if n := p.next(); n.kind != tNull {
			return nil, fmt.Errorf("%w: want null at offset %d", ErrSyntax, n.pos)
		}
		return c, nil
	case tNot:
		switch n := p.next(); n.kind {
		case tLike:
			c.Op = NotLike
		case tContains:
			c.Op = NotContains
		default:
			return nil, fmt.Errorf("%w: want like or contains after not at offset %d", ErrSyntax, n.pos)
		}
	case tLike:
		c.Op = Like
	case tContains:
		c.Op = Contains
	case tStartsWith:
		c.Op = StartsWith
	case tEndsWith:
		c.Op = EndsWith
	default:
		return nil, fmt.Errorf("%w: want an operator at offset %d, got %q", ErrSyntax, t.pos, t.text)
	}
	s := p.next()
	if s.kind != tString {
		return nil, fmt.Errorf("%w: operator %q needs a quoted string at offset %d", ErrSyntax, c.Op, s.pos)
	}
	c.Value = Str(s.text)
	return c, nil
}

// value: BOOL | STRING | INT | INT DOT INT.
func (p *parser) value() (Value, error) {
	t := p.next()
	switch t.kind {
	case tString:
		return Str(t.text), nil
	case tBool:
		return Bool(t.text == "true"), nil
	case tInt:
		text := t.text
		if p.peek().kind == tDot {
			p.next()
			frac := p.next()
			if frac.kind != tInt {
				return Value{}, fmt.Errorf("%w: want digits after '.' at offset %d", ErrSyntax, frac.pos)
			}
			text += "." + frac.text
		}
		d, err := decimal.NewFromString(text)
		if err != nil {
			return Value{}, fmt.Errorf("%w: bad number %q at offset %d", ErrSyntax, text, t.pos)
		}
		return Num(d), nil
	}
	return Value{}, fmt.Errorf("%w: want a value (a quoted string, true, false or an unsigned number) at offset %d, got %q", ErrSyntax, t.pos, t.text)
}
