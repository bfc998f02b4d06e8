package output

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Format{"": FormatTable, "table": FormatTable, "JSON": FormatJSON, " json ": FormatJSON} {
		got, err := ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil || !strings.Contains(err.Error(), "table or json") {
		t.Errorf("ParseFormat(yaml) error = %v", err)
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	t.Run("NilSliceIsEmptyArray", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		var s []string
		if err := JSON(&buf, s); err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); got != "[]\n" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("Indented", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		if err := JSON(&buf, map[string]int{"a": 1}); err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); got != "{\n  \"a\": 1\n}\n" {
			t.Errorf("got %q", got)
		}
	})
}

func TestTable(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tb := NewTable(&buf, "ID", "STATE", "NODES")
	tb.Row("pool-one", "active", "2/4")
	tb.Row("p2", "dele\tting", "0/0")
	if err := tb.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID        STATE      NODES\n" +
		"pool-one  active     2/4\n" +
		"p2        dele ting  0/0\n"
	if got := buf.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestDetails(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := Details(&buf, [2]string{"ID", "t1"}, [2]string{"Skipped", ""}, [2]string{"Command line", "a\nb"}); err != nil {
		t.Fatal(err)
	}
	want := "ID:            t1\nCommand line:  a b\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"this is too long", 10, "this is..."},
		{"héllo wörld", 8, "héllo..."},
		{"abcdef", 2, "ab"},
		{"abc", 0, "abc"},
	}
	for _, c := range cases {
		if got := Truncate(c.in, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestValueHelpers(t *testing.T) {
	t.Parallel()
	type state string
	s := state("active")
	if Str(&s) != "active" || Str[string](nil) != "" {
		t.Error("Str")
	}
	n := int32(-3)
	if Int(&n) != "-3" || Int[int32](nil) != "" {
		t.Error("Int")
	}
	b := true
	if Bool(&b) != "true" || Bool(nil) != "" {
		t.Error("Bool")
	}
	tm := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	if got, want := Time(&tm), tm.Local().Format(TimeLayout); got != want {
		t.Errorf("Time = %q, want %q", got, want)
	}
	if Time(nil) != "" || Time(&time.Time{}) != "" {
		t.Error("Time of nil/zero")
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := Size(&n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
