// Package cmdline splits Azure Batch task command lines into argument
// vectors. On Linux, Azure Batch runs a task's command line without a
// shell, so shell features need an explicit shell:
//
//	/bin/sh -c 'echo $HOME && ls'
//
// Split follows POSIX shell quoting rules but performs no expansion of any
// kind: no variables, globs, tildes, command substitution, redirections,
// pipes or comments.
package cmdline

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Error reports a malformed command line.
type Error struct {
	Pos int    // byte offset of the offending quote or backslash
	Msg string // human-readable description
}

func (e *Error) Error() string {
	return fmt.Sprintf("cmdline: %s at position %d", e.Msg, e.Pos)
}

func isSep(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// Split splits a command line into arguments with POSIX shell quoting rules
// but no expansion:
//
//   - space, tab and newline separate words;
//   - 'single quotes' are literal (no escapes inside);
//   - inside "double quotes" a backslash escapes only \" \\ \$ \` and a
//     newline (backslash-newline is removed); before any other character
//     the backslash is kept;
//   - outside quotes a backslash makes the next character literal, and
//     backslash-newline is removed (line continuation);
//   - adjacent quoted and unquoted parts join into one word, and an empty
//     pair of quotes of either kind on its own yields an empty argument;
//   - nothing else is special: `a|b` is the single word "a|b", $HOME stays
//     $HOME, and # starts no comment.
//
// An empty or all-whitespace command line gives an empty, non-nil slice.
// Errors (unterminated quote, trailing backslash) are *Error.
func Split(s string) ([]string, error) {
	args := []string{}
	var word strings.Builder
	inWord := false // a word has started, possibly empty ("" or '')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isSep(c):
			if inWord {
				args = append(args, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, &Error{Pos: i, Msg: "trailing backslash"}
			}
			i++
			if s[i] == '\n' {
				continue // line continuation: joins, does not start a word
			}
			word.WriteByte(s[i])
			inWord = true
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, &Error{Pos: i, Msg: "unterminated single quote"}
			}
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			start := i
			closed := false
			for i++; i < len(s); i++ {
				d := s[i]
				if d == '"' {
					closed = true
					break
				}
				if d == '\\' && i+1 < len(s) {
					switch s[i+1] {
					case '"', '\\', '$', '`':
						word.WriteByte(s[i+1])
						i++
						continue
					case '\n':
						i++
						continue
					}
				}
				word.WriteByte(d)
			}
			if !closed {
				return nil, &Error{Pos: start, Msg: "unterminated double quote"}
			}
			inWord = true
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		args = append(args, word.String())
	}
	return args, nil
}

// Join quotes args and joins them with spaces so that
// Split(Join(args)) returns args again. Arguments made only of characters
// that are safe unquoted (letters, digits and -_./:=,+@%) are left as they
// are; every other argument, including the empty one, is single-quoted,
// with each embedded single quote closed, escaped and reopened:
//
//	Join([]string{"echo", "it's"}) == `echo 'it'\''s'`
//
// A POSIX shell also reads each word back unchanged (though it would take a
// leading NAME=value word as a variable assignment).
func Join(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(Quote(a))
	}
	return b.String()
}

// Quote returns a single argument in the form Join uses.
func Quote(s string) string {
	if s != "" && isSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isSafe(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_./:=,+@%", c) >= 0) {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return false
		}
		i += n
	}
	return true
}
