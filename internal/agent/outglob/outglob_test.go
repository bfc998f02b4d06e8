package outglob_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kilnbatch/kiln/internal/agent/outglob"
)

func mustCompile(t *testing.T, pattern string) *outglob.Pattern {
	t.Helper()
	p, err := outglob.Compile(pattern)
	if err != nil {
		t.Fatalf("Compile(%q): %v", pattern, err)
	}
	return p
}

func TestMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern string
		yes, no []string
	}{
		{"output.txt", []string{"output.txt", "./output.txt"}, []string{"output.txt2", "a/output.txt", "Output.txt"}},
		{"*", []string{"a", "a.txt", "abc*"}, []string{".hidden", "a/b", ""}},
		{"abc*", []string{"abc", "abcdef"}, []string{"ab", "xabc", "abc/d"}},
		{"*.txt", []string{"a.txt", ".txt.txt"[1:], "x.y.txt"}, []string{".a.txt", "a.txt.gz", "d/a.txt"}},
		{".*.gif", []string{".a.gif", "..gif"}, []string{"a.gif", ".a.png"}},
		{"?.log", []string{"a.log", "é.log"}, []string{"ab.log", ".log", "..log"}},
		{"a?c", []string{"abc", "a-c"}, []string{"ac", "a/c", "abbc"}},
		{"[abc].txt", []string{"a.txt", "c.txt"}, []string{"d.txt", "ab.txt"}},
		{"[a-c]x", []string{"ax", "bx", "cx"}, []string{"dx", "Ax"}},
		{"[!abc]x", []string{"dx", "zx"}, []string{"ax", "bx", ".x"}},
		{"[^a-y]", []string{"z", "0"}, []string{"a", "m"}},
		{"[]]x", []string{"]x"}, []string{"x", "ax"}},
		{"[!]]x", []string{"ax"}, []string{"]x"}},
		{"[a-]", []string{"a", "-"}, []string{"b"}},
		{"abc[*]", []string{"abc*"}, []string{"abc", "abcd"}},
		{"a[?]", []string{"a?"}, []string{"ab"}},
		{`a\b`, []string{`a\b`}, []string{"a/b", "ab"}},
		{"**/*.txt", []string{"a.txt", "d/a.txt", "d/e/f/a.txt"}, []string{".h/a.txt", "d/.h/a.txt", "d/.a.txt", "a.txt/x"}},
		{"**/.h/x", []string{".h/x", "d/.h/x"}, []string{"x", "d/x"}},
		{"out/**", []string{"out/a", "out/d/e/a"}, []string{"out", "a", "out/.x", "other/out/a"}},
		{"out/**/*.log", []string{"out/a.log", "out/1/2/a.log"}, []string{"out/a.txt", "a.log"}},
		{"**/logs/*", []string{"logs/a", "x/y/logs/a"}, []string{"logs", "x/logs/a/b"}},
		{"a/**/b/**/c", []string{"a/b/c", "a/x/b/y/z/c", "a/b/b/c"}, []string{"a/c", "a/b/x"}},
		{"**/**/x", []string{"x", "a/x", "a/b/x"}, []string{"a/y"}},
		{"a**b/c", []string{"ab/c", "axyzb/c"}, []string{"a/b/c"}},
		{"*/*", []string{"a/b"}, []string{"a", "a/b/c", ".a/b", "a/.b"}},
		{"./dir//*.txt", []string{"dir/a.txt"}, []string{"a.txt"}},
		{"*a*b*c", []string{"abc", "xaxbxc", "aabbcc"}, []string{"acb", "abcx"}},
		{"日本*", []string{"日本語"}, []string{"本日"}},
	}
	for _, tc := range cases {
		p := mustCompile(t, tc.pattern)
		for _, name := range tc.yes {
			if !p.Match(name) {
				t.Errorf("%q should match %q", tc.pattern, name)
			}
		}
		for _, name := range tc.no {
			if p.Match(name) {
				t.Errorf("%q should not match %q", tc.pattern, name)
			}
		}
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	for _, pattern := range []string{"", ".", "./", "/etc/passwd", "../stdout.txt", "a/../b", "a/..", "[abc", "a/[!", "x[]"} {
		if _, err := outglob.Compile(pattern); err == nil {
			t.Errorf("Compile(%q) succeeded", pattern)
		}
	}
	for _, pattern := range []string{"..", "../x", "a/../../b"} {
		if _, err := outglob.Compile(pattern); !errors.Is(err, outglob.ErrParent) {
			t.Errorf("Compile(%q) = %v, want ErrParent", pattern, err)
		}
	}
	// ".." inside a name is just a name.
	if p := mustCompile(t, "a..b/..c"); !p.Match("a..b/..c") {
		t.Error("a..b/..c should match itself")
	}
}

func TestLiteralAndBase(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern string
		literal bool
		base    string
	}{
		{"output.txt", true, ""},
		{"out/result.txt", true, "out"},
		{"./out//deep/result.txt", true, "out/deep"},
		{"*.txt", false, ""},
		{"std*.txt", false, ""},
		{"out/logs/*.txt", false, "out/logs"},
		{"out/**/x", false, "out"},
		{"out/**", false, "out"},
		{"**/*.txt", false, ""},
		{"a/*/b/c.txt", false, "a"},
		{"abc[*]", false, ""},
		{"d/a?", false, "d"},
	}
	for _, tc := range cases {
		p := mustCompile(t, tc.pattern)
		if p.Literal() != tc.literal || p.Base() != tc.base {
			t.Errorf("%q: Literal() = %v, Base() = %q; want %v, %q", tc.pattern, p.Literal(), p.Base(), tc.literal, tc.base)
		}
	}
}

// tree is the file system the Glob tests search.
var tree = fstest.MapFS{
	"stdout.txt":            {Data: []byte("o")},
	"stderr.txt":            {Data: []byte("e")},
	"wd/result.txt":         {Data: []byte("r")},
	"wd/.hidden.txt":        {Data: []byte("h")},
	"wd/a.log":              {Data: []byte("l")},
	"wd/out/1.txt":          {Data: []byte("1")},
	"wd/out/2.txt":          {Data: []byte("2")},
	"wd/out/sub/3.txt":      {Data: []byte("3")},
	"wd/out/sub/deep/4.txt": {Data: []byte("4")},
	"wd/out/sub/deep/4.bin": {Data: []byte("4")},
	"wd/out/.cache/5.txt":   {Data: []byte("5")},
	"wd/empty":              {Mode: fs.ModeDir},
	"wd/abc*":               {Data: []byte("*")},
	"wd/abcd":               {Data: []byte("d")},
	"wd/dir.txt/inner":      {Data: []byte("i")},
}

func TestGlob(t *testing.T) {
	t.Parallel()
	cases := map[string][]string{
		"std*.txt":          {"stderr.txt", "stdout.txt"},
		"wd/result.txt":     {"wd/result.txt"},
		"wd/missing.txt":    nil,
		"wd/empty":          nil, // a directory is not a file
		"wd/nodir/*.txt":    nil,
		"wd/*.txt":          {"wd/result.txt"},
		"wd/.*.txt":         {"wd/.hidden.txt"},
		"wd/out/*.txt":      {"wd/out/1.txt", "wd/out/2.txt"},
		"wd/**/*.txt":       {"wd/out/1.txt", "wd/out/2.txt", "wd/out/sub/3.txt", "wd/out/sub/deep/4.txt", "wd/result.txt"},
		"wd/out/**":         {"wd/out/1.txt", "wd/out/2.txt", "wd/out/sub/3.txt", "wd/out/sub/deep/4.bin", "wd/out/sub/deep/4.txt"},
		"wd/out/*/deep/4.?": nil,
		"wd/out/*/*/4.???":  {"wd/out/sub/deep/4.bin", "wd/out/sub/deep/4.txt"},
		"wd/out/[12].txt":   {"wd/out/1.txt", "wd/out/2.txt"},
		"wd/out/[!1].txt":   {"wd/out/2.txt"},
		"wd/abc[*]":         {"wd/abc*"},
		"wd/abc*":           {"wd/abc*", "wd/abcd"},
		"**/4.txt":          {"wd/out/sub/deep/4.txt"},
		"wd/**/.cache/*":    {"wd/out/.cache/5.txt"},
	}
	for pattern, want := range cases {
		got, err := mustCompile(t, pattern).Glob(tree)
		if err != nil {
			t.Errorf("Glob(%q): %v", pattern, err)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("Glob(%q) = %q, want %q", pattern, got, want)
		}
	}
}

// TestGlobAgreesWithMatch checks that Glob finds exactly the files Match
// accepts, for many patterns over the same tree.
func TestGlobAgreesWithMatch(t *testing.T) {
	t.Parallel()
	var files []string
	fs.WalkDir(tree, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, name)
		}
		return err
	})
	parts := []string{"*", "**", "?", "wd", "out", "sub", "*.txt", "[0-9].*", ".*", "s*", "4.*", "deep", "[!s]*"}
	var patterns []string
	for _, a := range parts {
		patterns = append(patterns, a)
		for _, b := range parts {
			patterns = append(patterns, a+"/"+b)
			for _, c := range parts {
				patterns = append(patterns, a+"/"+b+"/"+c)
			}
		}
	}
	for _, pattern := range patterns {
		p := mustCompile(t, pattern)
		got, err := p.Glob(tree)
		if err != nil {
			t.Fatalf("Glob(%q): %v", pattern, err)
		}
		var want []string
		for _, f := range files {
			if p.Match(f) {
				want = append(want, f)
			}
		}
		if !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
			t.Errorf("Glob(%q) = %q, Match accepts %q", pattern, got, want)
		}
	}
}

// TestGlobSymlinks runs on a real directory through an os.Root: links to
// files inside count, links out of the root and dangling links do not, and
// "**" does not loop through a link to a parent.
func TestGlobSymlinks(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string]string{"a/real.txt": "r", "b/x.txt": "x"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"a/link.txt":    "real.txt",
		"a/escape.txt":  filepath.Join(outside, "secret.txt"),
		"a/escape2.txt": "../../" + filepath.Base(outside) + "/secret.txt",
		"a/dangling":    "nothing.txt",
		"a/loop":        "..",
		"outdir":        outside,
		"bdir":          "b",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	cases := map[string][]string{
		"a/*":            {"a/link.txt", "a/real.txt"},
		"**/*.txt":       {"a/link.txt", "a/real.txt", "b/x.txt"},
		"a/escape.txt":   nil,
		"outdir/*":       nil,
		"bdir/*.txt":     {"bdir/x.txt"},
		"a/loop/a/*.txt": {"a/loop/a/link.txt", "a/loop/a/real.txt"},
	}
	for pattern, want := range cases {
		got, err := mustCompile(t, pattern).Glob(root.FS())
		if err != nil {
			t.Errorf("Glob(%q): %v", pattern, err)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("Glob(%q) = %q, want %q", pattern, got, want)
		}
		for _, g := range got {
			if strings.Contains(g, "secret") {
				t.Errorf("Glob(%q) reached outside the root: %s", pattern, g)
			}
		}
	}
}

// FuzzMatch checks that no pattern or name makes Compile or Match panic, and
// that a literal pattern matches exactly itself.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{"*.txt", "**/a?[!b-d]", "[]]", "a/**", "abc[*]", "\xff*"} {
		f.Add(s, "dir/a.txt")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		p, err := outglob.Compile(pattern)
		if err != nil {
			return
		}
		p.Match(name)
		p.Base()
		if p.Literal() && !strings.Contains(pattern, "//") && !strings.HasPrefix(pattern, "./") &&
			!strings.Contains(pattern, "/./") && !strings.HasSuffix(pattern, "/") && !strings.HasSuffix(pattern, "/.") &&
			pattern != "" && !p.Match(pattern) {
			t.Errorf("literal %q does not match itself", pattern)
		}
	})
}
