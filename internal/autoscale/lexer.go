package autoscale

import (
	"strconv"
	"strings"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString
	tOp // operators and punctuation; text holds the operator
)

type token struct {
	kind tokKind
	pos  pos
	text string  // identifier name, operator, or raw literal
	num  float64 // value of a tNumber
	str  string  // value of a tString
}

func (t token) is(op string) bool { return t.kind == tOp && t.text == op }

func (t token) describe() string {
	if t.kind == tEOF {
		return "end of formula"
	}
	return strconv.Quote(t.text)
}

// twoCharOps are matched before single characters so "<=" is one token.
var twoCharOps = []string{"<=", ">=", "==", "!=", "&&", "||"}

const oneCharOps = "+-*/!<>?:=(),.;"

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '$'
}

func isIdentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= '0' && c <= '9'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lexer tracks line and column so errors read like Azure's "Line 9, Col 43".
type lexer struct {
	src        string
	i          int
	line, col  int
	lineStarts int
}

func lex(src string) ([]token, *Error) {
	lx := &lexer{src: src, line: 1}
	var toks []token
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tEOF {
			return toks, nil
		}
	}
}

func (lx *lexer) here() pos { return pos{lx.line, lx.i - lx.lineStarts + 1} }

func (lx *lexer) advance(n int) {
	for ; n > 0 && lx.i < len(lx.src); n-- {
		if lx.src[lx.i] == '\n' {
			lx.line++
			lx.lineStarts = lx.i + 1
		}
		lx.i++
	}
}

// skip passes over white space and comments. The docs say formulas "can
// include line breaks and comments" and show // comments; /* */ block comments
// are accepted too, as in the C-like syntax the language borrows.
func (lx *lexer) skip() *Error {
	for lx.i < len(lx.src) {
		c := lx.src[lx.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			lx.advance(1)
		case strings.HasPrefix(lx.src[lx.i:], "//"):
			for lx.i < len(lx.src) && lx.src[lx.i] != '\n' {
				lx.advance(1)
			}
		case strings.HasPrefix(lx.src[lx.i:], "/*"):
			start := lx.here()
			end := strings.Index(lx.src[lx.i+2:], "*/")
			if end < 0 {
				return syntaxErrorf(start, "unterminated comment")
			}
			lx.advance(end + 4)
		default:
			return nil
		}
	}
	return nil
}

func (lx *lexer) next() (token, *Error) {
	if err := lx.skip(); err != nil {
		return token{}, err
	}
	p := lx.here()
	if lx.i >= len(lx.src) {
		return token{kind: tEOF, pos: p}, nil
	}
	s, start, c := lx.src, lx.i, lx.src[lx.i]
	switch {
	case isIdentStart(c):
		j := start + 1
		for j < len(s) && isIdentChar(s[j]) {
			j++
		}
		if s[start:j] == "$" {
			return token{}, syntaxErrorf(p, "'$' must be followed by a variable name")
		}
		lx.advance(j - start)
		return token{kind: tIdent, pos: p, text: s[start:j]}, nil
	case isDigit(c) || c == '.' && start+1 < len(s) && isDigit(s[start+1]):
		return lx.number(p)
	case c == '"' || c == '\'':
		j := strings.IndexByte(s[start+1:], c)
		if j < 0 {
			return token{}, syntaxErrorf(p, "unterminated string")
		}
		lx.advance(j + 2)
		return token{kind: tString, pos: p, text: s[start : start+j+2], str: s[start+1 : start+1+j]}, nil
	}
	for _, op := range twoCharOps {
		if strings.HasPrefix(s[start:], op) {
			lx.advance(2)
			return token{kind: tOp, pos: p, text: op}, nil
		}
	}
	if strings.IndexByte(oneCharOps, c) >= 0 {
		lx.advance(1)
		return token{kind: tOp, pos: p, text: string(c)}, nil
	}
	return token{}, syntaxErrorf(p, "unexpected character %q", rune(c))
}

func (lx *lexer) number(p pos) (token, *Error) {
	s, start := lx.src, lx.i
	j := start
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j < len(s) && s[j] == '.' && j+1 < len(s) && isDigit(s[j+1]) {
		j++
		for j < len(s) && isDigit(s[j]) {
			j++
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			j = k
		}
	}
	if j < len(s) && isIdentChar(s[j]) {
		return token{}, syntaxErrorf(p, "malformed number %q", s[start:j+1])
	}
	v, err := strconv.ParseFloat(s[start:j], 64)
	if err != nil {
		return token{}, syntaxErrorf(p, "malformed number %q", s[start:j])
	}
	lx.advance(j - start)
	return token{kind: tNumber, pos: p, text: s[start:j], num: v}, nil
}
