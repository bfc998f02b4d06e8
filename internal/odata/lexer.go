package odata

import (
	"fmt"
	"strconv"
	"strings"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tTime
	tLParen
	tRParen
	tComma
	tErr // stands in for tEOF where lexing failed
)

type token struct {
	kind tokKind
	pos  int    // byte offset of the token's first byte
	text string // raw source text
	val  value  // literal value for tString, tNumber, tTime
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of filter"
	case tLParen:
		return "'('"
	case tRParen:
		return "')'"
	case tComma:
		return "','"
	default:
		return strconv.Quote(t.text)
	}
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// lex splits s into tokens; the last token is tEOF, or tErr if lexing
// failed, in which case the error is returned with the tokens before it so
// that the parser can report an earlier syntax error first.
func lex(s string) ([]token, *ParseError) {
	toks, err := lexTokens(s)
	if err != nil {
		pe := err.(*ParseError)
		return append(toks, token{kind: tErr, pos: pe.Pos}), pe
	}
	return toks, nil
}

func lexTokens(s string) (toks []token, err error) {
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			toks = append(toks, token{kind: tEOF, pos: len(s)})
			return toks, nil
		}
		start := i
		c := s[i]
		switch {
		case c == '(':
			toks = append(toks, token{kind: tLParen, pos: i, text: "("})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, pos: i, text: ")"})
			i++
		case c == ',':
			toks = append(toks, token{kind: tComma, pos: i, text: ","})
			i++
		case c == '\'':
			str, end, err := lexQuoted(s, i)
			if err != nil {
				return toks, err
			}
			i = end
			toks = append(toks, token{kind: tString, pos: start, text: s[start:i], val: stringLiteral(str)})
		case isDigit(c) || c == '-' && i+1 < len(s) && isDigit(s[i+1]):
			tok, end, err := lexNumberOrTime(s, i)
			if err != nil {
				return toks, err
			}
			i = end
			toks = append(toks, tok)
		case isIdentStart(c):
			i++
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
			// datetime'...' / datetimeoffset'...' typed literals.
			if word := s[start:i]; i < len(s) && s[i] == '\'' && isTypedLiteralPrefix(word) {
				if !strings.EqualFold(word, "datetime") && !strings.EqualFold(word, "datetimeoffset") {
					return toks, &ParseError{Pos: start, Msg: fmt.Sprintf("unsupported typed literal %s'...'", word)}
				}
				str, end, err := lexQuoted(s, i)
				if err != nil {
					return toks, err
				}
				t, ok := parseTime(str)
				if !ok {
					return toks, &ParseError{Pos: start, Msg: fmt.Sprintf("invalid datetime literal %q (want e.g. datetime'2024-01-02T03:04:05Z')", str)}
				}
				i = end
				toks = append(toks, token{kind: tTime, pos: start, text: s[start:i], val: value{k: kTime, t: t}})
				continue
			}
			// Property paths: identifiers joined by '/'.
			for i < len(s) && s[i] == '/' {
				if i+1 >= len(s) || !isIdentStart(s[i+1]) {
					return toks, &ParseError{Pos: i + 1, Msg: "expected property name after '/'"}
				}
				i += 2
				for i < len(s) && isIdentChar(s[i]) {
					i++
				}
			}
			toks = append(toks, token{kind: tIdent, pos: start, text: s[start:i]})
		default:
			return toks, &ParseError{Pos: i, Msg: unexpectedChar(s, i)}
		}
	}
}

// isTypedLiteralPrefix reports whether word introduces an OData typed
// literal such as datetime'...'. Any other word directly followed by a quote
// is an ordinary token (e.g. the operator in "state eq'active'").
func isTypedLiteralPrefix(word string) bool {
	for _, p := range [...]string{"datetime", "datetimeoffset", "guid", "time", "duration", "binary", "X"} {
		if strings.EqualFold(word, p) {
			return true
		}
	}
	return false
}

func unexpectedChar(s string, i int) string {
	c := s[i]
	hint := ""
	switch c {
	case '=':
		hint = "; use eq"
		if i+1 < len(s) && s[i+1] == '=' {
			hint = "; use eq instead of =="
		}
	case '!':
		hint = "; use ne or not"
	case '<':
		hint = "; use lt or le"
	case '>':
		hint = "; use gt or ge"
	case '&':
		hint = "; use and"
	case '|':
		hint = "; use or"
	case '"':
		hint = "; string literals use single quotes"
	case '/':
		hint = "; property paths look like executionInfo/exitCode"
	}
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("unexpected byte 0x%02x%s", c, hint)
	}
	return fmt.Sprintf("unexpected character %q%s", c, hint)
}

// lexQuoted scans a single-quoted string starting at the quote s[i], in
// which two consecutive quotes stand for one. It returns the unescaped
// content and the offset just past the closing quote.
func lexQuoted(s string, i int) (string, int, error) {
	start := i
	i++
	var b strings.Builder
	for {
		j := strings.IndexByte(s[i:], '\'')
		if j < 0 {
			return "", 0, &ParseError{Pos: start, Msg: "unterminated string literal"}
		}
		b.WriteString(s[i : i+j])
		i += j + 1
		if i < len(s) && s[i] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), i, nil
	}
}

// lexNumberOrTime scans an integer, a decimal (optionally with an exponent),
// possibly negative, or a bare ISO-8601 timestamp such as
// 2024-01-02T03:04:05Z.
func lexNumberOrTime(s string, i int) (token, int, error) {
	start := i
	// Bare timestamp: YYYY-MM-DD...
	if i+4 < len(s) && isDigit(s[i]) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) && s[i+4] == '-' {
		j := i
		for j < len(s) && (isIdentChar(s[j]) || s[j] == '-' || s[j] == '+' || s[j] == ':' || s[j] == '.') {
			j++
		}
		text := s[start:j]
		t, ok := parseTime(text)
		if !ok {
			return token{}, 0, &ParseError{Pos: start, Msg: fmt.Sprintf("invalid datetime literal %q (want e.g. 2024-01-02T03:04:05Z)", text)}
		}
		return token{kind: tTime, pos: start, text: text, val: value{k: kTime, t: t}}, j, nil
	}
	if s[i] == '-' {
		i++
	}
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return token{}, 0, &ParseError{Pos: start, Msg: "invalid number: expected digits after '.'"}
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			i = j
			for i < len(s) && isDigit(s[i]) {
				i++
			}
		}
	}
	if i < len(s) && (isIdentChar(s[i]) || s[i] == '.') {
		end := i
		for end < len(s) && (isIdentChar(s[end]) || s[end] == '.') {
			end++
		}
		return token{}, 0, &ParseError{Pos: start, Msg: fmt.Sprintf("invalid number %q", s[start:end])}
	}
	text := s[start:i]
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return token{}, 0, &ParseError{Pos: start, Msg: fmt.Sprintf("number %s out of range", text)}
	}
	return token{kind: tNumber, pos: start, text: text, val: value{k: kNumber, n: f}}, i, nil
}
