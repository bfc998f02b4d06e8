// Package odata implements the subset of OData query options that the Azure
// Batch REST API accepts: $filter (parsing and in-memory evaluation against
// JSON documents) and $select.
//
// Filter semantics, chosen to match Azure Batch behaviour:
//
//   - Keywords (eq, ne, gt, ge, lt, le, and, or, not, true, false, null,
//     startswith, datetime) are case-insensitive. Property paths are
//     case-sensitive (Azure property names are camelCase).
//   - Precedence: not > comparison > and > or. So `not state eq 'x'` is
//     `(not state) eq 'x'` and is rejected as a type error; write
//     `not (state eq 'x')`.
//   - A missing property behaves like null: every comparison with it is
//     false except `eq null` (true) and `ne` with a non-null operand (true).
//     ne is always the negation of eq.
//   - Strings: eq/ne ignore case (Azure ids and enum values are
//     case-insensitive); ordering comparisons are lexical, also ignoring
//     case so that they agree with eq. Two strings that both parse as
//     RFC 3339 timestamps are compared as instants.
//   - datetime'...' literals and bare timestamps (2024-01-02T03:04:05Z) are
//     compared as instants against document strings that parse as
//     timestamps; against anything else they are unequal/unordered.
//   - Numbers compare numerically, booleans with eq/ne (false < true).
//     Operands of different types are unequal and unordered.
//   - startswith(a, b) is true when both are strings and a begins with b
//     (case-sensitive, as OData specifies).
package odata

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseError is a syntax or type error in a $filter or $select expression.
type ParseError struct {
	Pos int    // byte offset in the input where the problem was found
	Msg string // human-readable description
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("odata: syntax error at position %d: %s", e.Pos, e.Msg)
}

// Filter is a parsed $filter expression. A nil *Filter matches everything.
type Filter struct {
	root node
	src  string
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 100

type cmpOp uint8

const (
	opEq cmpOp = iota
	opNe
	opGt
	opGe
	opLt
	opLe
)

var cmpOpNames = [...]string{"eq", "ne", "gt", "ge", "lt", "le"}

func (o cmpOp) String() string { return cmpOpNames[o] }

func lookupCmpOp(word string) (cmpOp, bool) {
	for i, name := range cmpOpNames {
		if strings.EqualFold(word, name) {
			return cmpOp(i), true
		}
	}
	return 0, false
}

// node is an AST node.
type node interface {
	eval(doc map[string]any) value
	write(b *strings.Builder)
}

type andNode struct{ l, r node }
type orNode struct{ l, r node }
type notNode struct{ x node }
type cmpNode struct {
	op   cmpOp
	l, r node
}
type startsWithNode struct{ s, prefix node }
type propNode struct {
	path string   // as written, e.g. "executionInfo/exitCode"
	segs []string // path split at '/'
}
type litNode struct{ v value }

func (n *andNode) eval(doc map[string]any) value {
	return boolValue(n.l.eval(doc).truth() && n.r.eval(doc).truth())
}

func (n *orNode) eval(doc map[string]any) value {
	return boolValue(n.l.eval(doc).truth() || n.r.eval(doc).truth())
}

func (n *notNode) eval(doc map[string]any) value {
	return boolValue(!n.x.eval(doc).truth())
}

func (n *cmpNode) eval(doc map[string]any) value {
	l, r := n.l.eval(doc), n.r.eval(doc)
	switch n.op {
	case opEq:
		return boolValue(equal(l, r))
	case opNe:
		return boolValue(!equal(l, r))
	}
	c, ok := compare(l, r)
	if !ok {
		return boolValue(false)
	}
	switch n.op {
	case opGt:
		return boolValue(c > 0)
	case opGe:
		return boolValue(c >= 0)
	case opLt:
		return boolValue(c < 0)
	default: // opLe
		return boolValue(c <= 0)
	}
}

func (n *startsWithNode) eval(doc map[string]any) value {
	s, p := n.s.eval(doc), n.prefix.eval(doc)
	return boolValue(s.k == kString && p.k == kString && strings.HasPrefix(s.s, p.s))
}

func (n *propNode) eval(doc map[string]any) value {
	m := doc
	last := len(n.segs) - 1
	for i, seg := range n.segs {
		v, ok := m[seg]
		if !ok {
			return value{k: kMissing}
		}
		if i == last {
			return fromJSON(v)
		}
		if m, ok = v.(map[string]any); !ok {
			return value{k: kMissing}
		}
	}
	return value{k: kMissing} // unreachable: paths have at least one segment
}

func (n *litNode) eval(map[string]any) value { return n.v }

func (n *andNode) write(b *strings.Builder) { writeBinary(b, n.l, "and", n.r) }
func (n *orNode) write(b *strings.Builder)  { writeBinary(b, n.l, "or", n.r) }
func (n *cmpNode) write(b *strings.Builder) { writeBinary(b, n.l, n.op.String(), n.r) }
func (n *notNode) write(b *strings.Builder) {
	b.WriteString("not ")
	n.x.write(b)
}
func (n *startsWithNode) write(b *strings.Builder) {
	b.WriteString("startswith(")
	n.s.write(b)
	b.WriteString(", ")
	n.prefix.write(b)
	b.WriteByte(')')
}
func (n *propNode) write(b *strings.Builder) { b.WriteString(n.path) }
func (n *litNode) write(b *strings.Builder) {
	switch n.v.k {
	case kNull:
		b.WriteString("null")
	case kBool:
		b.WriteString(strconv.FormatBool(n.v.b))
	case kNumber:
		b.WriteString(formatNumber(n.v.n))
	case kString:
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(n.v.s, "'", "''"))
		b.WriteByte('\'')
	case kTime:
		b.WriteString("datetime'")
		b.WriteString(n.v.t.Format("2006-01-02T15:04:05.999999999Z07:00"))
		b.WriteByte('\'')
	}
}

func writeBinary(b *strings.Builder, l node, op string, r node) {
	b.WriteByte('(')
	l.write(b)
	b.WriteByte(' ')
	b.WriteString(op)
	b.WriteByte(' ')
	r.write(b)
	b.WriteByte(')')
}

// staticKind is the type a node is known to produce at parse time; known is
// false for property references, whose type depends on the document.
func staticKind(n node) (k kind, known bool) {
	switch n := n.(type) {
	case *litNode:
		return n.v.k, true
	case *propNode:
		return 0, false
	default:
		return kBool, true
	}
}

// ParseFilter parses an Azure Batch $filter expression. An empty (or
// all-whitespace) string returns (nil, nil), meaning "match all". Errors are
// *ParseError.
func ParseFilter(s string) (*Filter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	toks, lexErr := lex(s)
	p := &parser{toks: toks}
	root, err := p.parse()
	if lexErr != nil {
		// Report whichever problem comes first; running into the point
		// where lexing failed always yields a parse error at or after it.
		if pe, ok := err.(*ParseError); !ok || pe.Pos >= lexErr.Pos {
			return nil, lexErr
		}
	}
	if err != nil {
		return nil, err
	}
	return &Filter{root: root, src: s}, nil
}

func (p *parser) parse() (node, error) {
	startTok := p.peek()
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.unexpected(t, "'and', 'or' or end of filter")
	}
	if err := checkBoolean(root, startTok.pos, "the filter"); err != nil {
		return nil, err
	}
	return root, nil
}

// MustParseFilter is like ParseFilter but panics on error; for tests and
// constant filters.
func MustParseFilter(s string) *Filter {
	f, err := ParseFilter(s)
	if err != nil {
		panic(err)
	}
	return f
}

type parser struct {
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF && t.kind != tErr {
		p.i++
	}
	return t
}

// isKeyword reports whether t is the identifier kw (case-insensitively).
func isKeyword(t token, kw string) bool {
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

var reserved = []string{"and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le"}

func isReserved(t token) bool {
	for _, kw := range reserved {
		if isKeyword(t, kw) {
			return true
		}
	}
	return false
}

// unexpected builds the error for token t where one of want was expected.
// A plain word after a complete operand is almost always a misspelt
// operator, so it is reported as such.
func (p *parser) unexpected(t token, want string) error {
	if t.kind == tIdent && !isReserved(t) && p.i > 0 {
		if prev := p.toks[p.i-1]; prev.kind != tLParen && prev.kind != tComma && !isReserved(prev) {
			return &ParseError{Pos: t.pos, Msg: fmt.Sprintf("unknown operator %q", t.text)}
		}
	}
	return &ParseError{Pos: t.pos, Msg: fmt.Sprintf("unexpected %s; expected %s", t.describe(), want)}
}

func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > maxDepth {
		return &ParseError{Pos: pos, Msg: "expression nested too deeply"}
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// parseOr: and ('or' and)*
func (p *parser) parseOr() (node, error) {
	startTok := p.peek()
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for isKeyword(p.peek(), "or") {
		p.next()
		rTok := p.peek()
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		if err := checkBoolean(l, startTok.pos, "left operand of 'or'"); err != nil {
			return nil, err
		}
		if err := checkBoolean(r, rTok.pos, "right operand of 'or'"); err != nil {
			return nil, err
		}
		l = &orNode{l, r}
	}
	return l, nil
}

// parseAnd: cmp ('and' cmp)*
func (p *parser) parseAnd() (node, error) {
	startTok := p.peek()
	l, err := p.parseCmp()
	if err != nil {
		return nil, err
	}
	for isKeyword(p.peek(), "and") {
		p.next()
		rTok := p.peek()
		r, err := p.parseCmp()
		if err != nil {
			return nil, err
		}
		if err := checkBoolean(l, startTok.pos, "left operand of 'and'"); err != nil {
			return nil, err
		}
		if err := checkBoolean(r, rTok.pos, "right operand of 'and'"); err != nil {
			return nil, err
		}
		l = &andNode{l, r}
	}
	return l, nil
}

// parseCmp: unary (cmpop unary)*  (left-associative, type-checked)
func (p *parser) parseCmp() (node, error) {
	startTok := p.peek()
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tIdent {
			return l, nil
		}
		op, ok := lookupCmpOp(t.text)
		if !ok {
			return l, nil
		}
		p.next()
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if err := checkComparison(l, op, r, startTok.pos, t.pos); err != nil {
			return nil, err
		}
		l = &cmpNode{op: op, l: l, r: r}
	}
}

// parseUnary: 'not' unary | primary
func (p *parser) parseUnary() (node, error) {
	t := p.peek()
	if !isKeyword(t, "not") {
		return p.parsePrimary()
	}
	p.next()
	if err := p.enter(t.pos); err != nil {
		return nil, err
	}
	defer p.leave()
	xTok := p.peek()
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	if err := checkBoolean(x, xTok.pos, "operand of 'not'"); err != nil {
		return nil, err
	}
	return &notNode{x}, nil
}

func (p *parser) parsePrimary() (node, error) {
	t := p.next()
	switch t.kind {
	case tString, tNumber, tTime:
		return &litNode{t.val}, nil
	case tLParen:
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		defer p.leave()
		if p.peek().kind == tRParen {
			return nil, &ParseError{Pos: t.pos, Msg: "empty parentheses"}
		}
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if c := p.peek(); c.kind != tRParen {
			if c.kind == tEOF {
				return nil, &ParseError{Pos: c.pos, Msg: fmt.Sprintf("missing ')' to close '(' at position %d", t.pos)}
			}
			return nil, p.unexpected(c, "')'")
		}
		p.next()
		return e, nil
	case tIdent:
		switch {
		case isKeyword(t, "true"):
			return &litNode{boolValue(true)}, nil
		case isKeyword(t, "false"):
			return &litNode{boolValue(false)}, nil
		case isKeyword(t, "null"):
			return &litNode{value{k: kNull}}, nil
		case isReserved(t):
			return nil, &ParseError{Pos: t.pos, Msg: fmt.Sprintf("expected operand, found keyword %q", t.text)}
		}
		if p.peek().kind == tLParen {
			return p.parseCall(t)
		}
		return &propNode{path: t.text, segs: strings.Split(t.text, "/")}, nil
	case tEOF:
		return nil, &ParseError{Pos: t.pos, Msg: "unexpected end of filter; expected operand"}
	default:
		return nil, &ParseError{Pos: t.pos, Msg: fmt.Sprintf("unexpected %s; expected operand", t.describe())}
	}
}

// parseCall parses a function call; name has been consumed and '(' is next.
func (p *parser) parseCall(name token) (node, error) {
	if !strings.EqualFold(name.text, "startswith") {
		return nil, &ParseError{Pos: name.pos, Msg: fmt.Sprintf("unsupported function %q (only startswith is supported)", name.text)}
	}
	open := p.next()
	if err := p.enter(open.pos); err != nil {
		return nil, err
	}
	defer p.leave()
	var args []node
	for {
		argTok := p.peek()
		if argTok.kind == tRParen && len(args) == 0 {
			break
		}
		a, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if k, known := staticKind(a); known && k != kString {
			return nil, &ParseError{Pos: argTok.pos, Msg: fmt.Sprintf("startswith argument %d must be a string or property, not a %s", len(args)+1, k)}
		}
		args = append(args, a)
		if p.peek().kind != tComma {
			break
		}
		p.next()
	}
	c := p.peek()
	if c.kind != tRParen {
		if c.kind == tEOF {
			return nil, &ParseError{Pos: c.pos, Msg: fmt.Sprintf("missing ')' to close %s( at position %d", name.text, name.pos)}
		}
		return nil, p.unexpected(c, "',' or ')'")
	}
	p.next()
	if len(args) != 2 {
		return nil, &ParseError{Pos: name.pos, Msg: fmt.Sprintf("startswith takes 2 arguments, got %d", len(args))}
	}
	return &startsWithNode{s: args[0], prefix: args[1]}, nil
}

// checkBoolean rejects nodes that cannot be boolean (non-boolean literals).
func checkBoolean(n node, pos int, what string) error {
	if k, known := staticKind(n); known && k != kBool {
		return &ParseError{Pos: pos, Msg: fmt.Sprintf("%s must be a boolean expression, not a %s", what, k)}
	}
	return nil
}

// checkComparison rejects comparisons that can never be meaningful.
func checkComparison(l node, op cmpOp, r node, lpos, oppos int) error {
	lk, lknown := staticKind(l)
	rk, rknown := staticKind(r)
	if op != opEq && op != opNe && (lknown && lk == kNull || rknown && rk == kNull) {
		return &ParseError{Pos: oppos, Msg: fmt.Sprintf("null can only be compared with eq or ne, not %s", op)}
	}
	if !lknown || !rknown || lk == rk || lk == kNull || rk == kNull {
		return nil
	}
	if lk == kTime && rk == kString || lk == kString && rk == kTime {
		return nil // a string literal may hold a timestamp
	}
	msg := fmt.Sprintf("cannot compare %s with %s", describeOperand(l, lk), describeOperand(r, rk))
	if _, isNot := l.(*notNode); isNot {
		msg += "; 'not' binds tighter than comparisons, write not (a eq b)"
	}
	return &ParseError{Pos: lpos, Msg: msg}
}

func describeOperand(n node, k kind) string {
	if _, ok := n.(*litNode); ok {
		return "a " + k.String()
	}
	return "a boolean expression"
}

// Match reports whether doc satisfies the filter. doc is a JSON object as
// decoded by encoding/json into map[string]any (numbers as float64 or
// json.Number). A nil *Filter matches everything.
func (f *Filter) Match(doc map[string]any) bool {
	if f == nil {
		return true
	}
	return f.root.eval(doc).truth()
}

// String returns a canonical, fully parenthesised rendering of the filter
// that ParseFilter accepts and parses to the same expression.
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	var b strings.Builder
	f.root.write(&b)
	return b.String()
}

// Source returns the text the filter was parsed from.
func (f *Filter) Source() string {
	if f == nil {
		return ""
	}
	return f.src
}

// Properties returns every property path the filter references, in order of
// first appearance and without duplicates, e.g. "state",
// "executionInfo/exitCode". It returns nil for a nil filter or one built
// from literals only.
func (f *Filter) Properties() []string {
	if f == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	var walk func(n node)
	walk = func(n node) {
		switch n := n.(type) {
		case *andNode:
			walk(n.l)
			walk(n.r)
		case *orNode:
			walk(n.l)
			walk(n.r)
		case *notNode:
			walk(n.x)
		case *cmpNode:
			walk(n.l)
			walk(n.r)
		case *startsWithNode:
			walk(n.s)
			walk(n.prefix)
		case *propNode:
			if !seen[n.path] {
				seen[n.path] = true
				out = append(out, n.path)
			}
		}
	}
	walk(f.root)
	return out
}

// EqualityOn reports whether the whole filter is `prop eq 'v'` or an `or` of
// such terms, all on the same property prop (matched case-sensitively), and
// if so returns the string values in order of appearance, without exact
// duplicates. Anything else — other operators, other properties, non-string
// literals, `and`, `not` — gives ok=false, as does a nil filter. The filter
// compares strings case-insensitively, so a caller pushing the values down
// to a database must do the same (or normalise case).
func (f *Filter) EqualityOn(prop string) (values []string, ok bool) {
	if f == nil {
		return nil, false
	}
	var walk func(n node) bool
	walk = func(n node) bool {
		switch n := n.(type) {
		case *orNode:
			return walk(n.l) && walk(n.r)
		case *cmpNode:
			if n.op != opEq {
				return false
			}
			pn, lit := n.l, n.r
			if _, isLit := pn.(*litNode); isLit {
				pn, lit = lit, pn
			}
			p, isProp := pn.(*propNode)
			l, isLit := lit.(*litNode)
			if !isProp || !isLit || p.path != prop || l.v.k != kString {
				return false
			}
			for _, v := range values {
				if v == l.v.s {
					return true
				}
			}
			values = append(values, l.v.s)
			return true
		}
		return false
	}
	if !walk(f.root) {
		return nil, false
	}
	return values, true
}

// Conjuncts splits the filter at its top-level "and"s: the filter matches a
// document exactly when every conjunct does. A filter without a top-level
// "and" is its own single conjunct. Used to push parts of a filter down to
// an index while the whole filter is still evaluated.
func (f *Filter) Conjuncts() []*Filter {
	if f == nil {
		return nil
	}
	var out []*Filter
	var walk func(n node)
	walk = func(n node) {
		if a, ok := n.(*andNode); ok {
			walk(a.l)
			walk(a.r)
			return
		}
		var b strings.Builder
		n.write(&b)
		out = append(out, &Filter{root: n, src: b.String()})
	}
	walk(f.root)
	return out
}
