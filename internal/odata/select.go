package odata

import (
	"fmt"
	"strings"
	"unicode"
)

// ParseSelect parses a $select value such as "id,state,executionInfo" (a
// leading "$select=" is accepted and ignored) into property names. Names are
// trimmed of surrounding whitespace and must be identifier paths
// (identifiers separated by '/', e.g. "executionInfo/exitCode"); empty
// entries and anything else are a *ParseError. Duplicates are dropped,
// keeping the first occurrence.
//
// An empty (or all-whitespace) value, or one containing "*", returns
// (nil, nil), meaning "all properties".
func ParseSelect(s string) ([]string, error) {
	offset := 0
	trimmed := strings.TrimLeft(s, " \t")
	if len(trimmed) >= len("$select=") && strings.EqualFold(trimmed[:len("$select=")], "$select=") {
		offset = len(s) - len(trimmed) + len("$select=")
	}
	if strings.TrimSpace(s[offset:]) == "" {
		return nil, nil
	}
	var out []string
	seen := map[string]bool{}
	all := false
	pos := offset
	for _, part := range strings.Split(s[offset:], ",") {
		lead := len(part) - len(strings.TrimLeftFunc(part, unicode.IsSpace))
		name := strings.TrimSpace(part)
		switch {
		case name == "":
			return nil, &ParseError{Pos: pos + lead, Msg: "empty property name in $select"}
		case name == "*":
			all = true
		default:
			if i := invalidPathAt(name); i >= 0 {
				return nil, &ParseError{Pos: pos + lead + i, Msg: fmt.Sprintf("invalid property name %q in $select", name)}
			}
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
		pos += len(part) + 1
	}
	if all {
		return nil, nil
	}
	return out, nil
}

// invalidPathAt returns the offset of the first byte that makes name an
// invalid identifier path, or -1 if it is valid.
func invalidPathAt(name string) int {
	atStart := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case atStart:
			if !isIdentStart(c) {
				return i
			}
			atStart = false
		case c == '/':
			atStart = true
		case !isIdentChar(c):
			return i
		}
	}
	if atStart {
		return len(name) // empty, or ends with '/'
	}
	return -1
}

// ApplySelect returns a new map holding only those top-level properties of
// doc named by props (the first path segment of each name, so
// "executionInfo/exitCode" keeps all of executionInfo). Names match
// case-sensitively. Values are shared with doc, not copied. Names absent from
// doc are skipped.
//
// With no props (ParseSelect's "all properties") it returns a shallow copy of
// the whole doc. A nil doc gives nil.
func ApplySelect(doc map[string]any, props []string) map[string]any {
	if doc == nil {
		return nil
	}
	if len(props) == 0 {
		out := make(map[string]any, len(doc))
		for k, v := range doc {
			out[k] = v
		}
		return out
	}
	out := make(map[string]any, len(props))
	for _, p := range props {
		top, _, _ := strings.Cut(p, "/")
		if v, ok := doc[top]; ok {
			out[top] = v
		}
	}
	return out
}
