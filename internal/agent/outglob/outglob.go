// Package outglob matches the file patterns of Azure Batch output files
// (OutputFile.filePattern) against a directory tree.
//
// The rules are Azure's, as the Batch REST API documents filePattern, for a
// Linux node:
//
//   - "/" is the only separator; a backslash is an ordinary character;
//   - "*" matches any run of characters within one path segment, "?" one
//     character, "[abc]" one of the listed characters, "[a-c]" one in the
//     range, "[!abc]" (or "[^abc]") one not listed; a wildcard character is
//     escaped with brackets: "abc[*]" matches the file named "abc*";
//   - a segment that is exactly "**" matches any number of directories,
//     including none; a trailing "**" matches every file below ("out/**" is
//     "out/**/*"); "**" inside a longer segment is just "*";
//   - a name that starts with "." is matched only by a segment that starts
//     with a literal "." ("*.gif" does not match ".a.gif", ".*.gif" does),
//     and "**" does not enter directories whose names start with ".";
//   - a pattern without wildcards names a single file.
//
// Patterns are relative to the directory they are applied to; "." segments
// and empty segments are ignored, and ".." is refused (ErrParent): the
// agent decides what a pattern may reach before it compiles it.
package outglob

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"unicode/utf8"
)

// ErrParent is returned by Compile for a pattern with a ".." segment.
var ErrParent = errors.New(`outglob: ".." is not allowed in a file pattern`)

// Pattern is a compiled file pattern.
type Pattern struct {
	raw  string
	segs []segment
}

type segment struct {
	raw        string
	literal    bool // no wildcard: matches exactly raw
	doubleStar bool // "**"
}

// Compile parses a slash-separated relative pattern.
func Compile(pattern string) (*Pattern, error) {
	if strings.HasPrefix(pattern, "/") {
		return nil, fmt.Errorf("outglob: pattern %q is absolute", pattern)
	}
	p := &Pattern{raw: pattern}
	for _, s := range strings.Split(pattern, "/") {
		switch s {
		case "", ".":
			continue
		case "..":
			return nil, ErrParent
		case "**":
			p.segs = append(p.segs, segment{raw: s, doubleStar: true})
			continue
		}
		if strings.Contains(s, "**") {
			// Within a segment "**" can only mean what "*" means.
			for strings.Contains(s, "**") {
				s = strings.ReplaceAll(s, "**", "*")
			}
		}
		lit, err := validate(s)
		if err != nil {
			return nil, fmt.Errorf("outglob: %w", err)
		}
		p.segs = append(p.segs, segment{raw: s, literal: lit})
	}
	if len(p.segs) == 0 {
		return nil, fmt.Errorf("outglob: pattern %q names no file", pattern)
	}
	if p.segs[len(p.segs)-1].doubleStar {
		p.segs = append(p.segs, segment{raw: "*"})
	}
	// Consecutive "**" mean what one does.
	p.segs = slices.CompactFunc(p.segs, func(a, b segment) bool { return a.doubleStar && b.doubleStar })
	return p, nil
}

// validate checks the bracket expressions of one segment and reports whether
// it has no wildcard at all.
func validate(s string) (literal bool, err error) {
	literal = true
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?':
			literal = false
		case '[':
			literal = false
			end, ok := classEnd(s, i)
			if !ok {
				return false, fmt.Errorf("unterminated %q in %q", "[", s)
			}
			i = end
		}
	}
	return literal, nil
}

// String returns the pattern as given to Compile.
func (p *Pattern) String() string { return p.raw }

// Literal reports whether the pattern has no wildcard: it names one file.
func (p *Pattern) Literal() bool {
	for _, s := range p.segs {
		if !s.literal {
			return false
		}
	}
	return true
}

// Base is the directory part of the pattern before its first wildcard
// (slash separated, "" for none): "out/logs" for "out/logs/*.txt" and for
// "out/logs/**/x", "out" for "out/a.txt", "" for "*.txt". Azure names the
// blob of a matched file after its path relative to Base.
func (p *Pattern) Base() string {
	var dirs []string
	for _, s := range p.segs[:len(p.segs)-1] {
		if !s.literal {
			break
		}
		dirs = append(dirs, s.raw)
	}
	return strings.Join(dirs, "/")
}

// Match reports whether a slash-separated relative file path matches the
// pattern.
func (p *Pattern) Match(name string) bool {
	var parts []string
	for _, s := range strings.Split(name, "/") {
		if s != "" && s != "." {
			parts = append(parts, s)
		}
	}
	return matchParts(p.segs, parts)
}

func matchParts(segs []segment, parts []string) bool {
	for len(segs) > 0 {
		s := segs[0]
		if s.doubleStar {
			// Zero directories, or one more (not a dot directory) and
			// "**" again.
			if matchParts(segs[1:], parts) {
				return true
			}
			if len(parts) < 2 || strings.HasPrefix(parts[0], ".") {
				return false
			}
			parts = parts[1:]
			continue
		}
		if len(parts) == 0 || !s.match(parts[0]) {
			return false
		}
		segs, parts = segs[1:], parts[1:]
	}
	return len(parts) == 0
}

func (s segment) match(name string) bool {
	if s.literal {
		return name == s.raw
	}
	if strings.HasPrefix(name, ".") && !strings.HasPrefix(s.raw, ".") {
		return false
	}
	return matchSegment(s.raw, name)
}

// matchSegment matches name against a segment with *, ? and [...] (already
// validated), backtracking to the last "*" on a mismatch.
func matchSegment(pat, name string) bool {
	var starP, starN = -1, 0
	p, n := 0, 0
	for n < len(name) {
		if p < len(pat) {
			switch pat[p] {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				_, w := utf8.DecodeRuneInString(name[n:])
				p, n = p+1, n+w
				continue
			case '[':
				r, w := utf8.DecodeRuneInString(name[n:])
				end, _ := classEnd(pat, p)
				if matchClass(pat[p+1:end], r) {
					p, n = end+1, n+w
					continue
				}
			default:
				r, w := utf8.DecodeRuneInString(name[n:])
				pr, pw := utf8.DecodeRuneInString(pat[p:])
				if r == pr {
					p, n = p+pw, n+w
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last "*" take one more character and try again.
		_, w := utf8.DecodeRuneInString(name[starN:])
		starN += w
		p, n = starP+1, starN
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}

// classEnd returns the index of the "]" closing the class that opens at
// s[open]. A "]" right after "[" or "[!" is a member, not the end.
func classEnd(s string, open int) (int, bool) {
	i := open + 1
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		i++
	}
	if i < len(s) && s[i] == ']' {
		i++
	}
	for ; i < len(s); i++ {
		if s[i] == ']' {
			return i, true
		}
	}
	return 0, false
}

// matchClass matches r against the inside of a bracket expression.
func matchClass(class string, r rune) bool {
	negate := false
	if class != "" && (class[0] == '!' || class[0] == '^') {
		negate, class = true, class[1:]
	}
	var members []rune
	for _, c := range class {
		members = append(members, c)
	}
	in := false
	for i := 0; i < len(members); i++ {
		lo := members[i]
		if i+2 < len(members) && members[i+1] == '-' {
			if hi := members[i+2]; lo <= r && r <= hi {
				in = true
			}
			i += 2
			continue
		}
		if lo == r {
			in = true
		}
	}
	return in != negate
}

// Glob returns the regular files of fsys that match the pattern, sorted, as
// slash-separated paths. A pattern that matches nothing is not an error;
// neither are directories the pattern names that do not exist.
//
// Symbolic links are followed as fsys follows them (an os.Root's FS never
// leaves the root): a link to a regular file counts as one, a link that
// cannot be resolved is passed over, and "**" does not descend through
// links to directories, so a link cycle cannot make it loop. Explicit
// segments ("logs/*.txt" with logs a link) do follow them.
func (p *Pattern) Glob(fsys fs.FS) ([]string, error) {
	g := &globber{fsys: fsys, found: map[string]struct{}{}}
	if err := g.walk(".", p.segs); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(g.found))
	for name := range g.found {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

type globber struct {
	fsys  fs.FS
	found map[string]struct{}
}

func (g *globber) walk(dir string, segs []segment) error {
	s, last := segs[0], len(segs) == 1
	if s.literal {
		name := path.Join(dir, s.raw)
		if last {
			if g.isRegular(name) {
				g.found[name] = struct{}{}
			}
			return nil
		}
		if g.isDir(name) {
			return g.walk(name, segs[1:])
		}
		return nil
	}
	entries, err := fs.ReadDir(g.fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.doubleStar {
		if err := g.walk(dir, segs[1:]); err != nil { // no directory
			return err
		}
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				if err := g.walk(path.Join(dir, e.Name()), segs); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, e := range entries {
		if !s.match(e.Name()) {
			continue
		}
		name := path.Join(dir, e.Name())
		switch {
		case last && g.isRegular(name):
			g.found[name] = struct{}{}
		case !last && g.isDir(name):
			if err := g.walk(name, segs[1:]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *globber) isRegular(name string) bool {
	fi, err := fs.Stat(g.fsys, name)
	return err == nil && fi.Mode().IsRegular()
}

func (g *globber) isDir(name string) bool {
	fi, err := fs.Stat(g.fsys, name)
	return err == nil && fi.IsDir()
}
