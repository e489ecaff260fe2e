package filter

import (
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

type tokKind int

const (
	tEOF tokKind = iota
	tWord
	tString
	tNumber
	tOp
	tLParen
	tRParen
)

type token struct {
	kind tokKind
	text string
	pos  int
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
		case c == '=' || c == '<' || c == '>' || c == '!':
			start := i
			op := string(c)
			if i+1 < len(s) && (s[i+1] == '=' || (c == '<' && s[i+1] == '>')) {
				op += string(s[i+1])
			}
			if op == "!" {
				return nil, fmt.Errorf("%w: unexpected '!' at offset %d", ErrSyntax, i)
			}
			i += len(op)
			out = append(out, token{tOp, op, start})
		case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
			start := i
			i++
			for i < len(s) && (s[i] == '.' || (s[i] >= '0' && s[i] <= '9')) {
				i++
			}
			out = append(out, token{tNumber, s[start:i], start})
		case c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z'):
			start := i
			for i < len(s) && (s[i] == '_' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') || (s[i]|0x20 >= 'a' && s[i]|0x20 <= 'z')) {
				i++
			}
			out = append(out, token{tWord, s[start:i], start})
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
func (p *parser) isWord(w string) bool {
	t := p.peek()
	return t.kind == tWord && strings.EqualFold(t.text, w)
}

// Parse parses a `q` string. Errors wrap ErrSyntax and give the offset.
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

func (p *parser) expr(depth int) (Expr, error) {
	var terms Or
	for {
		t, err := p.term(depth)
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
		if !p.isWord("or") {
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
		if !p.isWord("and") {
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
	t := p.peek()
	if t.kind == tLParen {
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
	if f.kind != tWord || !fieldOK(f.text) {
		return nil, fmt.Errorf("%w: want a field name at offset %d, got %q", ErrSyntax, f.pos, f.text)
	}
	c := Cond{Field: f.text}
	t := p.next()
	switch {
	case t.kind == tOp:
		c.Op = Op(t.text)
		if c.Op == "!=" {
			c.Op = Ne
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		c.Value = v
		if v.IsNull() && c.Op != Eq && c.Op != Ne {
			return nil, fmt.Errorf("%w: null compares only with =, <> or != (offset %d)", ErrSyntax, t.pos)
		}
		return c, nil
	case t.kind == tWord && strings.EqualFold(t.text, "is"):
		c.Op = IsNull
		if p.isWord("not") {
			p.next()
			c.Op = IsNotNull
		}
		if !p.isWord("null") {
			return nil, fmt.Errorf("%w: want null at offset %d", ErrSyntax, p.peek().pos)
		}
		p.next()
		return c, nil
	case t.kind == tWord:
		w := strings.ToLower(t.text)
		switch w {
		case "not":
			n := p.next()
			switch strings.ToLower(n.text) {
			case "like":
				c.Op = NotLike
			case "contains":
				c.Op = NotContains
			default:
				return nil, fmt.Errorf("%w: want like or contains after not at offset %d", ErrSyntax, n.pos)
			}
		case "like":
			c.Op = Like
		case "contains":
			c.Op = Contains
		case "starts", "ends":
			if !p.isWord("with") {
				return nil, fmt.Errorf("%w: want 'with' after %q at offset %d", ErrSyntax, t.text, p.peek().pos)
			}
			p.next()
			c.Op = StartsWith
			if w == "ends" {
				c.Op = EndsWith
			}
		default:
			return nil, fmt.Errorf("%w: unknown operator %q at offset %d", ErrSyntax, t.text, t.pos)
		}
		s := p.next()
		if s.kind != tString {
			return nil, fmt.Errorf("%w: operator %q needs a quoted string at offset %d", ErrSyntax, c.Op, s.pos)
		}
		c.Value = Str(s.text)
		return c, nil
	}
	return nil, fmt.Errorf("%w: want an operator at offset %d, got %q", ErrSyntax, t.pos, t.text)
}

func (p *parser) value() (Value, error) {
	t := p.next()
	switch t.kind {
	case tString:
		return Str(t.text), nil
	case tNumber:
		d, err := decimal.NewFromString(t.text)
		if err != nil {
			return Value{}, fmt.Errorf("%w: bad number %q at offset %d", ErrSyntax, t.text, t.pos)
		}
		return Num(d), nil
	case tWord:
		switch strings.ToLower(t.text) {
		case "true":
			return Bool(true), nil
		case "false":
			return Bool(false), nil
		case "null":
			return Null(), nil
		}
	}
	return Value{}, fmt.Errorf("%w: want a value at offset %d, got %q", ErrSyntax, t.pos, t.text)
}
