package ui

import "testing"

func TestValidText(t *testing.T) {
	for in, want := range map[string]string{
		"plain":               "plain",
		"é\n":                 "é\n",
		"a\xffb":              "a?b",
		"\xff\xfe\xfd":        "???",
		"x\xe2\x82":           "x??", // a cut rune, once the file is complete
		"ok \xf0\x9f\x98\x80": "ok \xf0\x9f\x98\x80",
	} {
		got := validText([]byte(in))
		if got != want || len(got) != len(in) {
			t.Errorf("validText(%q) = %q, want %q (same length)", in, got, want)
		}
	}
}
