package cmdline

import (
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

var splitTests = []struct {
	in   string
	want []string
}{
	{``, []string{}},
	{`   `, []string{}},
	{"\t\n \n", []string{}},
	{`ls`, []string{"ls"}},
	{`ls -la /tmp`, []string{"ls", "-la", "/tmp"}},
	{"  a \t b\n\nc  ", []string{"a", "b", "c"}},
	{`/bin/sh -c 'echo hello > out.txt'`, []string{"/bin/sh", "-c", "echo hello > out.txt"}},
	{`/bin/sh -c 'echo $HOME && ls'`, []string{"/bin/sh", "-c", "echo $HOME && ls"}},
	{`python3 -c "print('x')"`, []string{"python3", "-c", "print('x')"}},
	{`cmd /c "echo %AZ_BATCH_TASK_DIR%"`, []string{"cmd", "/c", "echo %AZ_BATCH_TASK_DIR%"}},

	// No shell operators, expansion or comments.
	{`a|b`, []string{"a|b"}},
	{`a | b`, []string{"a", "|", "b"}},
	{`echo $HOME`, []string{"echo", "$HOME"}},
	{`echo ${HOME} $(id) ` + "`id`", []string{"echo", "${HOME}", "$(id)", "`id`"}},
	{`ls *.txt ~ ?`, []string{"ls", "*.txt", "~", "?"}},
	{`echo a;b&&c>d<e`, []string{"echo", "a;b&&c>d<e"}},
	{`echo # not a comment`, []string{"echo", "#", "not", "a", "comment"}},
	{`FOO=bar env`, []string{"FOO=bar", "env"}},

	// Single quotes: literal.
	{`'a b'`, []string{"a b"}},
	{`'a\b'`, []string{`a\b`}},
	{`'a"b'`, []string{`a"b`}},
	{`'$x'`, []string{`$x`}},
	{"'a\nb'", []string{"a\nb"}},
	{`''`, []string{""}},
	{`'' ''`, []string{"", ""}},
	{`a '' b`, []string{"a", "", "b"}},

	// Double quotes.
	{`"a b"`, []string{"a b"}},
	{`""`, []string{""}},
	{`"" ""`, []string{"", ""}},
	{`"a\"b"`, []string{`a"b`}},
	{`"a\\b"`, []string{`a\b`}},
	{`"\$HOME"`, []string{`$HOME`}},
	{"\"\\`x\\`\"", []string{"`x`"}},
	{"\"a\\\nb\"", []string{"ab"}},
	{`"a\nb"`, []string{`a\nb`}},
	{`"a\'b"`, []string{`a\'b`}},
	{`"C:\Program Files\x"`, []string{`C:\Program Files\x`}},
	{`"it's"`, []string{"it's"}},
	{"\"a\nb\"", []string{"a\nb"}},
	{`"\\"`, []string{`\`}},
	{`"\\\""`, []string{`\"`}},

	// Backslash outside quotes.
	{`a\ b`, []string{"a b"}},
	{`\'`, []string{"'"}},
	{`\"`, []string{`"`}},
	{`\\`, []string{`\`}},
	{`\a\b`, []string{"ab"}},
	{"a\\\nb", []string{"ab"}},
	{"a \\\n b", []string{"a", "b"}},
	{"\\\n", []string{}},
	{"\\\t", []string{"\t"}},

	// Adjacent parts join.
	{`a'b'"c"d`, []string{"abcd"}},
	{`--name="my job"`, []string{"--name=my job"}},
	{`'it'\''s'`, []string{"it's"}},
	{`"a"'b' c""d`, []string{"ab", "cd"}},
	{`x""`, []string{"x"}},
	{`""x`, []string{"x"}},

	// Unicode passes through untouched.
	{`echo héllo wörld`, []string{"echo", "héllo", "wörld"}},
	{`echo '日本語 テキスト' "emoji 🎉"`, []string{"echo", "日本語 テキスト", "emoji 🎉"}},
	{"echo a\u00a0b", []string{"echo", "a\u00a0b"}}, // NBSP is not a separator
	{"a\rb", []string{"a\rb"}}, // nor is CR
	{"\xff\xfe 'x'", []string{"\xff\xfe", "x"}},
}

func TestSplit(t *testing.T) {
	for _, tt := range splitTests {
		got, err := Split(tt.in)
		if err != nil {
			t.Errorf("Split(%q) error: %v", tt.in, err)
			continue
		}
		if got == nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Split(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		if back, err := Split(Join(got)); err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("Split(Join(%#v)) = %#v, %v (joined %q)", got, back, err, Join(got))
		}
	}
}

func TestSplitErrors(t *testing.T) {
	tests := []struct {
		in  string
		pos int
		msg string
	}{
		{`'`, 0, "unterminated single quote"},
		{`echo 'abc`, 5, "unterminated single quote"},
		{`echo "abc`, 5, "unterminated double quote"},
		{`echo "abc\"`, 5, "unterminated double quote"},
		{`echo "abc\`, 5, "unterminated double quote"},
		{`echo 'a' "b`, 9, "unterminated double quote"},
		{`"'"'`, 3, "unterminated single quote"},
		{`echo \`, 5, "trailing backslash"},
		{`\`, 0, "trailing backslash"},
		{`a\\\`, 3, "trailing backslash"},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Split(%q) = %#v, %v; want *Error", tt.in, got, err)
			continue
		}
		if got != nil || e.Pos != tt.pos || e.Msg != tt.msg {
			t.Errorf("Split(%q) = %#v, pos %d %q; want pos %d %q", tt.in, got, e.Pos, e.Msg, tt.pos, tt.msg)
		}
		if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "position") {
			t.Errorf("Error() = %q", err.Error())
		}
	}
}

func TestJoin(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ``},
		{[]string{}, ``},
		{[]string{""}, `''`},
		{[]string{"ls", "-la", "/tmp"}, `ls -la /tmp`},
		{[]string{"--name=x,y", "a+b@c%d:e"}, `--name=x,y a+b@c%d:e`},
		{[]string{"/bin/sh", "-c", "echo $HOME && ls"}, `/bin/sh -c 'echo $HOME && ls'`},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{"'"}, `''\'''`},
		{[]string{"a b", "", "c"}, `'a b' '' c`},
		{[]string{`C:\x`}, `'C:\x'`},
		{[]string{"héllo", "日本語"}, `héllo 日本語`},
		{[]string{"🎉"}, `'🎉'`},
		{[]string{"a\nb"}, "'a\nb'"},
		{[]string{"*", "~", "#"}, `'*' '~' '#'`},
		{[]string{"\xff"}, "'\xff'"},
	}
	for _, tt := range tests {
		got := Join(tt.in)
		if got != tt.want {
			t.Errorf("Join(%#v) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := Split(got)
		want := tt.in
		if want == nil {
			want = []string{}
		}
		if err != nil || !reflect.DeepEqual(back, want) {
			t.Errorf("Split(Join(%#v)) = %#v, %v", tt.in, back, err)
		}
	}
}

// TestSplitMatchesShell cross-checks Split against /bin/sh for the table
// inputs in which a shell would do nothing beyond quote removal.
func TestSplitMatchesShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	checked := 0
	for _, tt := range splitTests {
		// Skip anything a shell would expand or treat as an operator or a
		// comment, and words a shell could take as assignments.
		if strings.ContainsAny(tt.in, "$`*?[~#;&|<>(){}!=%\r\xff\u00a0") {
			continue
		}
		// An unquoted newline ends a shell command.
		if strings.Contains(tt.in, "\n") && !strings.ContainsAny(tt.in, `'"\`) {
			continue
		}
		script := "set -- " + tt.in + "\nfor a do printf '%s\\000' \"$a\"; done"
		out, err := exec.Command(sh, "-c", script).Output()
		if err != nil {
			t.Errorf("sh for %q: %v", tt.in, err)
			continue
		}
		want := []string{}
		if len(out) > 0 {
			want = strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		}
		got, _ := Split(tt.in)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Split(%q) = %#v, sh gives %#v", tt.in, got, want)
		}
		checked++
	}
	if checked < 30 {
		t.Errorf("only %d cases cross-checked", checked)
	}
}

func TestErrorMessage(t *testing.T) {
	if got := (&Error{Pos: 4, Msg: "trailing backslash"}).Error(); got != "cmdline: trailing backslash at position 4" {
		t.Errorf("Error() = %q", got)
	}
}

func FuzzSplit(f *testing.F) {
	for _, tt := range splitTests {
		f.Add(tt.in)
	}
	for _, s := range []string{`'`, `"`, `\`, `"\`, `a\`, `"\"`, "\"\\\n\"", `'\''`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, err := Split(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Pos < 0 || e.Pos >= len(s) || e.Msg == "" || args != nil {
				t.Fatalf("Split(%q) = %#v, %#v", s, args, err)
			}
			if c := s[e.Pos]; c != '\'' && c != '"' && c != '\\' {
				t.Fatalf("Split(%q) error at %d points at %q", s, e.Pos, c)
			}
			return
		}
		if args == nil {
			t.Fatalf("Split(%q) returned nil without error", s)
		}
		joined := Join(args)
		back, err := Split(joined)
		if err != nil || !reflect.DeepEqual(back, args) {
			t.Fatalf("Split(%q) = %#v; Split(Join) = %#v, %v (joined %q)", s, args, back, err, joined)
		}
		// Join is canonical: joining again gives the same text.
		if again := Join(back); again != joined {
			t.Fatalf("Join not stable: %q vs %q", joined, again)
		}
		// An input with no quoting characters splits like strings.Fields
		// restricted to space, tab and newline.
		if !strings.ContainsAny(s, `'"\`) {
			want := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
			if want == nil {
				want = []string{}
			}
			if !reflect.DeepEqual(args, want) {
				t.Fatalf("Split(%q) = %#v, want fields %#v", s, args, want)
			}
		}
	})
}

// FuzzJoin checks the round trip from arbitrary argument vectors.
func FuzzJoin(f *testing.F) {
	f.Add("a", "b c", "")
	f.Add("it's", `"\`, "$HOME")
	f.Add("\n", "\t", "\xff")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, args := range [][]string{{a}, {a, b, c}, {c, b, a, ""}} {
			joined := Join(args)
			back, err := Split(joined)
			if err != nil || !reflect.DeepEqual(back, args) {
				t.Fatalf("Split(Join(%#v)) = %#v, %v (joined %q)", args, back, err, joined)
			}
		}
	})
}
