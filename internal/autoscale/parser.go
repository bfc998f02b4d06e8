package autoscale

import "strings"

// Formula is a parsed autoscale formula, safe for concurrent Evaluate calls.
type Formula struct {
	src   string
	stmts []statement
}

// Parse checks a formula the way Azure does when it is set on a pool: size,
// syntax, statement count, and assignments only to writable variables. It
// returns an *Error on failure.
func Parse(src string) (*Formula, error) {
	if len(src) > MaxFormulaBytes {
		return nil, &Error{Code: CodeTooLong, Message: "The specified auto-scaling formula exceeds lengths limit.",
			Values: []NameValue{{Name: "Message", Value: "The formula is longer than 8192 characters"}}}
	}
	toks, lerr := lex(src)
	if lerr != nil {
		return nil, lerr
	}
	p := &parser{toks: toks}
	var stmts []statement
	for p.peek().kind != tEOF {
		if p.peek().is(";") {
			p.pos++ // empty statement
			continue
		}
		st, err := p.statement()
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, st)
		if len(stmts) > MaxStatements {
			return nil, syntaxErrorf(st.p, "the formula has more than %d statements", MaxStatements)
		}
		if t := p.peek(); !t.is(";") && t.kind != tEOF {
			return nil, syntaxErrorf(t.pos, "expected ';' but found %s", t.describe())
		}
	}
	return &Formula{src: src, stmts: stmts}, nil
}

// String returns the source the formula was parsed from.
func (f *Formula) String() string { return f.src }

type parser struct {
	toks  []token
	pos   int
	depth int
}

// maxDepth bounds nesting so hostile formulas cannot exhaust the stack; 8 KB
// of '(' would otherwise recurse 8192 levels deep per precedence level.
const maxDepth = 200

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) take() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) expect(op string) (token, *Error) {
	t := p.take()
	if !t.is(op) {
		return t, syntaxErrorf(t.pos, "expected '%s' but found %s", op, t.describe())
	}
	return t, nil
}

func (p *parser) statement() (statement, *Error) {
	t := p.peek()
	if t.kind == tIdent && p.toks[p.pos+1].is("=") {
		if err := checkAssignable(t); err != nil {
			return statement{}, err
		}
		p.pos += 2
		x, err := p.expr()
		return statement{p: t.pos, target: t.text, x: x}, err
	}
	x, err := p.expr()
	return statement{p: t.pos, x: x}, err
}

func checkAssignable(t token) *Error {
	name := strings.TrimPrefix(t.text, "$")
	if _, ok := metricVars[name]; ok {
		return syntaxErrorf(t.pos, "%s is a read-only service-defined variable", t.text)
	}
	if _, ok := timeIntervals[t.text]; ok {
		return syntaxErrorf(t.pos, "%s is a constant", t.text)
	}
	return nil
}

func (p *parser) expr() (expr, *Error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, syntaxErrorf(p.peek().pos, "expression nested too deeply")
	}
	return p.ternary()
}

// ternary is the lowest precedence level and associates to the right:
// a ? b : c ? d : e is a ? b : (c ? d : e).
func (p *parser) ternary() (expr, *Error) {
	cond, err := p.binary(0)
	if err != nil || !p.peek().is("?") {
		return cond, err
	}
	q := p.take()
	then, err := p.expr()
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(":"); err != nil {
		return nil, err
	}
	els, err := p.expr()
	if err != nil {
		return nil, err
	}
	return &ternary{p: q.pos, cond: cond, then: then, els: els}, nil
}

// precedence lists binary operators from loosest to tightest, as in C.
var precedence = [][]string{
	{"||"},
	{"&&"},
	{"==", "!="},
	{"<", "<=", ">", ">="},
	{"+", "-"},
	{"*", "/"},
}

func (p *parser) binary(level int) (expr, *Error) {
	if level == len(precedence) {
		return p.unary()
	}
	l, err := p.binary(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tOp || !contains(precedence[level], t.text) {
			return l, nil
		}
		p.take()
		r, err := p.binary(level + 1)
		if err != nil {
			return nil, err
		}
		l = &binary{p: t.pos, op: t.text, l: l, r: r}
	}
}

func contains(ops []string, op string) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

func (p *parser) unary() (expr, *Error) {
	t := p.peek()
	if t.is("-") || t.is("!") || t.is("+") {
		p.take()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, syntaxErrorf(t.pos, "expression nested too deeply")
		}
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return x, nil
		}
		return &unary{p: t.pos, op: t.text, x: x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (expr, *Error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for p.peek().is(".") {
		dot := p.take()
		name := p.take()
		if name.kind != tIdent {
			return nil, syntaxErrorf(name.pos, "expected a member name after '.' but found %s", name.describe())
		}
		if !p.peek().is("(") {
			x = &field{p: dot.pos, x: x, name: name.text}
			continue
		}
		v, ok := x.(*ident)
		if !ok {
			return nil, syntaxErrorf(name.pos, "%s can only be called on a service-defined variable", name.text)
		}
		args, err := p.args()
		if err != nil {
			return nil, err
		}
		x = &method{p: name.pos, v: v, name: name.text, args: args}
	}
	return x, nil
}

func (p *parser) args() ([]expr, *Error) {
	if _, err := p.expect("("); err != nil {
		return nil, err
	}
	var args []expr
	if p.peek().is(")") {
		p.take()
		return args, nil
	}
	for {
		a, err := p.expr()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		t := p.take()
		if t.is(")") {
			return args, nil
		}
		if !t.is(",") {
			return nil, syntaxErrorf(t.pos, "expected ',' or ')' but found %s", t.describe())
		}
	}
}

func (p *parser) primary() (expr, *Error) {
	t := p.peek()
	switch {
	case t.kind == tNumber:
		p.take()
		return &numberLit{p: t.pos, v: t.num}, nil
	case t.kind == tString:
		p.take()
		return &stringLit{p: t.pos, v: t.str}, nil
	case t.kind == tIdent:
		p.take()
		if !p.peek().is("(") {
			return &ident{p: t.pos, name: t.text}, nil
		}
		if _, ok := functions[t.text]; !ok {
			return nil, syntaxErrorf(t.pos, "unknown function %s", t.text)
		}
		args, err := p.args()
		if err != nil {
			return nil, err
		}
		return &call{p: t.pos, name: t.text, args: args}, nil
	case t.is("("):
		p.take()
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(")"); err != nil {
			return nil, err
		}
		return x, nil
	}
	return nil, syntaxErrorf(t.pos, "expected an expression but found %s", t.describe())
}
