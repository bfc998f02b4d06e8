package autoscale

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		src   string
		stmts int
	}{
		{"Empty", "", 0},
		{"OnlySemicolons", ";;;", 0},
		{"OnlyComment", "// nothing here", 0},
		{"NoTrailingSemicolon", "$TargetDedicatedNodes = 1", 1},
		{"TrailingSemicolon", "$TargetDedicatedNodes = 1;", 1},
		{"LineComments", "// a\n$TargetDedicatedNodes = 1; // b\n// c", 1},
		{"BlockComment", "/* a\n b */ $TargetDedicatedNodes = /* c */ 1;", 1},
		{"CommentWithSlashes", "x = 4 / 2; // 4 / 2 /* not a block", 1},
		{"LineBreaksInStatement", "$t =\n    1 ?\n    2 : 3;", 1},
		{"BareExpression", "$CPUPercent.GetSample(1)", 1},
		{"DollarOptional", "x = 1; $x = 2;", 2},
		{"NestedCalls", "a = max(min(avg(1, 2), 3), sum(1));", 1},
		{"MethodChainOnTime", "h = time().hour;", 1},
		{"SingleQuotes", "t = time('2026-01-01');", 1},
		{"Hundred", strings.Repeat("x = 1;", 100), 100},
		{"HundredWithEmpty", strings.Repeat("x = 1;;", 100), 100},
		{"TabsAndCRLF", "x\t=\t1;\r\ny = 2;\r\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustParse(t, tt.src)
			if len(f.stmts) != tt.stmts {
				t.Errorf("%d statements, want %d", len(f.stmts), tt.stmts)
			}
		})
	}
}

func TestParse_ErrSyntax(t *testing.T) {
	t.Parallel()
	tests := []struct{ src, msg string }{
		{"x = ", "Line 1, Col 5: expected an expression but found end of formula"},
		{"x = 1 +", "Line 1, Col 8: expected an expression"},
		{"x = 1 2", `Line 1, Col 7: expected ';' but found "2"`},
		{"x = (1 + 2", "expected ')' but found end of formula"},
		{"x = 1)", `expected ';' but found ")"`},
		{"x = 1 ? 2", "expected ':' but found end of formula"},
		{"x = max(1,", "expected an expression"},
		{"x = max(1 2)", `expected ',' or ')' but found "2"`},
		{"x = foo(1)", "Line 1, Col 5: unknown function foo"},
		{"x = AVG(1)", "unknown function AVG"},
		{"x = 1 % 2", "Line 1, Col 7: unexpected character '%'"},
		{"x = #", "unexpected character '#'"},
		{"x = \"abc", "Line 1, Col 5: unterminated string"},
		{"x = 1; /* open", "Line 1, Col 8: unterminated comment"},
		{"x = 1e", `malformed number "1e"`},
		{"x = 12abc", `malformed number "12a"`},
		{"$ = 1", "'$' must be followed by a variable name"},
		{"x = $", "'$' must be followed by a variable name"},
		{"x = t.", "expected a member name after '.' but found end of formula"},
		{"x = t.1", `Line 1, Col 6: expected ';' but found ".1"`},
		{"x = max(1).GetSample(1)", "GetSample can only be called on a service-defined variable"},
		{"x = = 1", `expected an expression but found "="`},
		{"1 = 2", `expected ';' but found "="`},
		{"x == 1 = 2", `expected ';' but found "="`},
		{"x = 1;\n\n  y = ", "Line 3, Col 7: expected an expression"},
		{"$CPUPercent = 1", "Line 1, Col 1: $CPUPercent is a read-only service-defined variable"},
		{"$PendingTasks = 1", "read-only"},
		{"$CurrentDedicatedNodes = 1", "read-only"},
		{"$TaskSlotsPerNode = 1", "read-only"},
		{"TimeInterval_Hour = 1", "TimeInterval_Hour is a constant"},
		{"x = " + strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300), "expression nested too deeply"},
		{"x = " + strings.Repeat("-", 300) + "1", "expression nested too deeply"},
		{"x = " + strings.Repeat("max(", 300) + "1" + strings.Repeat(")", 300), "expression nested too deeply"},
		{"x = " + strings.Repeat("1 ? ", 300) + "1" + strings.Repeat(" : 1", 300), "expression nested too deeply"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tt.src)
			if err == nil {
				t.Fatal("no error")
			}
			e := asError(t, err)
			if e.Code != CodeSyntaxError || e.Message != "The specified auto-scaling formula has a syntax error." ||
				!strings.Contains(errMessage(e), tt.msg) {
				t.Errorf("error %v, want %q", e, tt.msg)
			}
		})
	}
}

// TestParse_ErrLimits checks the documented limits: "The formula string
// cannot exceed 8 KB, can include up to 100 statements".
func TestParse_ErrLimits(t *testing.T) {
	t.Parallel()
	atLimit := "x = 1;" + strings.Repeat(" ", MaxFormulaBytes-6)
	if _, err := Parse(atLimit); err != nil {
		t.Errorf("8192-byte formula: %v", err)
	}
	_, err := Parse(atLimit + " ")
	if e := asError(t, err); e.Code != CodeTooLong {
		t.Errorf("8193-byte formula: %v, want %s", e, CodeTooLong)
	}
	_, err = Parse(strings.Repeat("x = 1;", 101))
	if e := asError(t, err); e.Code != CodeSyntaxError || !strings.Contains(errMessage(e), "more than 100 statements") {
		t.Errorf("101 statements: %v", e)
	}
	if _, err := Parse(strings.Repeat("x = 1;", 100) + strings.Repeat(";", 50)); err != nil {
		t.Errorf("100 statements and empty ones: %v", err)
	}
}

func TestLexPositions(t *testing.T) {
	t.Parallel()
	toks, err := lex("a = 1;\n  $B.GetSample(2) // c\n/* d\n */ \"s\" <= 3")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks {
		got = append(got, tk.pos.String()+" "+tk.text)
	}
	want := []string{
		"Line 1, Col 1 a", "Line 1, Col 3 =", "Line 1, Col 5 1", "Line 1, Col 6 ;",
		"Line 2, Col 3 $B", "Line 2, Col 5 .", "Line 2, Col 6 GetSample", "Line 2, Col 15 (", "Line 2, Col 16 2", "Line 2, Col 17 )",
		`Line 4, Col 5 "s"`, "Line 4, Col 9 <=", "Line 4, Col 12 3", "Line 4, Col 13 ",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("tokens\n got %q\nwant %q", got, want)
	}
}
