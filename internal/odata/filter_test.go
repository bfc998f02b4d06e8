package odata

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const taskJSON = `{
	"id": "task-17",
	"displayName": "Render frame 17",
	"url": "https://acct.region.batch.azure.com/jobs/job-1/tasks/task-17",
	"state": "completed",
	"previousState": "running",
	"creationTime": "2024-03-05T10:11:12.345Z",
	"stateTransitionTime": "2024-03-05T10:20:00Z",
	"commandLine": "/bin/sh -c 'echo it''s done'",
	"priority": 100,
	"isDedicated": true,
	"note": null,
	"tags": ["a", "b"],
	"constraints": {"maxTaskRetryCount": 3, "retentionTime": "P7D"},
	"executionInfo": {
		"startTime": "2024-03-05T10:12:00Z",
		"endTime": "2024-03-05T10:19:59.5Z",
		"exitCode": 1,
		"retryCount": 0,
		"requeueCount": 0,
		"result": "failure"
	},
	"nodeInfo": {"nodeId": "tvm-1_1-20240305", "poolId": "Pool-A"}
}`

func decode(t testing.TB, s string, useNumber bool) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	if useNumber {
		d.UseNumber()
	}
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return m
}

func TestMatch(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		// The examples Azure documents.
		{`state eq 'active'`, false},
		{`state eq 'completed'`, true},
		{`state eq 'completed' and executionInfo/exitCode ne 0`, true},
		{`state eq 'completed' and executionInfo/exitCode eq 0`, false},
		{`(state eq 'running') or (state eq 'preparing')`, false},
		{`(state eq 'running') or (state eq 'completed')`, true},
		{`startswith(id, 'task-1')`, true},
		{`startswith(id, 'task-2')`, false},
		{`executionInfo/result eq 'failure'`, true},
		{`executionInfo/result eq 'success'`, false},
		{`creationTime gt datetime'2024-01-01T00:00:00Z'`, true},
		{`creationTime lt datetime'2024-01-01T00:00:00Z'`, false},
		{`priority ge 100 and state eq 'active'`, false},
		{`priority ge 100 and state eq 'completed'`, true},
		{`not (state eq 'active')`, true},
		{`not (state eq 'completed')`, false},

		// Keywords are case-insensitive.
		{`state EQ 'completed' AND priority GE 100`, true},
		{`State eq 'completed'`, false}, // property names are case-sensitive
		{`startsWith(id, 'task')`, true},
		{`STARTSWITH(id,'task')`, true},
		{`NOT (state Eq 'completed') Or TRUE`, true},
		{`creationTime gt DateTime'2024-01-01T00:00:00Z'`, true},
		{`creationTime gt DATETIME'2024-01-01T00:00:00Z'`, true},
		{`creationTime gt datetimeoffset'2024-01-01T00:00:00Z'`, true},

		// String equality ignores case; ordering is lexical.
		{`state eq 'Completed'`, true},
		{`state ne 'COMPLETED'`, false},
		{`id eq 'TASK-17'`, true},
		{`nodeInfo/poolId eq 'pool-a'`, true},
		{`id gt 'task-1'`, true},
		{`id lt 'task-2'`, true},
		{`id ge 'TASK-17'`, true},
		{`id le 'TASK-17'`, true},
		{`id gt 'TASK-17'`, false},
		{`displayName eq 'render frame 17'`, true},
		{`state eq 'complete'`, false},

		// startswith is case-sensitive and needs strings.
		{`startswith(id, 'TASK')`, false},
		{`startswith(id, '')`, true},
		{`startswith(priority, '1')`, false},
		{`startswith(missing, 'a')`, false},
		{`startswith('abc', 'ab')`, true},
		{`startswith(nodeInfo/nodeId, 'tvm-')`, true},
		{`startswith(id, 'task') eq true`, true},
		{`startswith(id, 'task') eq false`, false},
		{`not startswith(id, 'task')`, false},

		// Escaped quotes.
		{`commandLine eq '/bin/sh -c ''echo it''''s done'''`, true},
		{`'it''s' eq 'IT''S'`, true},

		// Numbers.
		{`priority eq 100`, true},
		{`priority eq 100.0`, true},
		{`priority eq 1e2`, true},
		{`priority ne 100`, false},
		{`priority gt 99.5`, true},
		{`priority lt 100`, false},
		{`priority le 100`, true},
		{`priority gt -1`, true},
		{`priority ge -100.25`, true},
		{`executionInfo/exitCode gt 0`, true},
		{`executionInfo/retryCount eq 0`, true},
		{`executionInfo/retryCount le -0`, true},
		{`constraints/maxTaskRetryCount eq 3`, true},
		{`priority eq '100'`, false}, // a string is not a number
		{`priority ne '100'`, true},
		{`priority gt '1'`, false},
		{`id gt 5`, false},

		// Booleans.
		{`isDedicated eq true`, true},
		{`isDedicated eq false`, false},
		{`isDedicated ne false`, true},
		{`isDedicated eq 'true'`, false},
		{`isDedicated`, true},
		{`not isDedicated`, false},
		{`isDedicated and state eq 'completed'`, true},
		{`state`, false}, // a non-boolean property is not true
		{`true`, true},
		{`false`, false},
		{`not false`, true},
		{`true and false`, false},
		{`true or false`, true},
		{`isDedicated gt false`, true},

		// Missing properties and null.
		{`missing eq 'x'`, false},
		{`missing ne 'x'`, true},
		{`missing gt 0`, false},
		{`missing ge 0`, false},
		{`missing lt 0`, false},
		{`missing le 0`, false},
		{`missing eq null`, true},
		{`missing ne null`, false},
		{`note eq null`, true},
		{`note ne null`, false},
		{`note eq 'x'`, false},
		{`note ne 'x'`, true},
		{`id eq null`, false},
		{`id ne null`, true},
		{`null eq null`, true},
		{`executionInfo/missing eq null`, true},
		{`executionInfo/missing ne 3`, true},
		{`id/sub eq 'x'`, false},      // path through a non-object
		{`id/sub eq null`, true},      // ... is missing
		{`tags eq null`, false},       // arrays are present
		{`tags ne null`, true},        // ... and non-null
		{`tags eq 'a'`, false},        // but never equal to a scalar
		{`executionInfo gt 1`, false}, // objects are unordered
		{`missing eq missing2`, true}, // both missing ~ both null
		{`id eq missing`, false},

		// Property-to-property comparisons.
		{`state eq previousState`, false},
		{`state ne previousState`, true},
		{`executionInfo/startTime lt executionInfo/endTime`, true},
		{`priority gt executionInfo/exitCode`, true},

		// Times.
		{`creationTime eq datetime'2024-03-05T10:11:12.345Z'`, true},
		{`creationTime eq datetime'2024-03-05T11:11:12.345+01:00'`, true},
		{`creationTime ne datetime'2024-03-05T11:11:12.345+01:00'`, false},
		{`creationTime ge datetime'2024-03-05T10:11:12.345Z'`, true},
		{`creationTime gt datetime'2024-03-05T10:11:12.345Z'`, false},
		{`creationTime lt datetime'2024-03-05T10:11:13'`, true},
		{`creationTime gt datetime'2024-03-05T00:00'`, true},
		{`creationTime gt 2024-01-01T00:00:00Z`, true},
		{`creationTime gt 2024-01-01t00:00:00z`, true},
		{`creationTime gt datetime'2024-03-05T10:11:12.3449999999Z'`, true},
		{`creationTime lt 2024-01-01T00:00:00Z`, false},
		{`creationTime eq 2024-03-05T10:11:12.345000Z`, true},
		{`creationTime gt '2024-01-01T00:00:00Z'`, true},
		{`creationTime eq '2024-03-05T10:11:12.345000Z'`, true},
		{`creationTime eq '2024-03-05T11:11:12.345+01:00'`, true},
		{`creationTime lt '2024-03-05T11:11:12.345+01:30'`, false},
		{`creationTime lt '2024-03-05T11:11:12.345+00:30'`, true},
		{`executionInfo/endTime le 2024-03-05T10:19:59.5Z`, true},
		{`executionInfo/endTime lt 2024-03-05T10:19:59.5Z`, false},
		{`stateTransitionTime gt creationTime`, true},
		{`id gt datetime'2024-01-01T00:00:00Z'`, false}, // not a timestamp
		{`id ne datetime'2024-01-01T00:00:00Z'`, true},
		{`priority gt datetime'2024-01-01T00:00:00Z'`, false},
		{`missing lt datetime'2024-01-01T00:00:00Z'`, false},
		{`missing ne datetime'2024-01-01T00:00:00Z'`, true},
		{`creationTime eq null`, false},

		// Precedence: not > comparison > and > or.
		{`state eq 'active' or state eq 'completed' and priority eq 100`, true},
		{`state eq 'completed' or state eq 'active' and priority eq 1`, true},
		{`(state eq 'completed' or state eq 'active') and priority eq 1`, false},
		{`state eq 'active' and priority eq 100 or isDedicated`, true},
		{`not isDedicated or isDedicated`, true},
		{`not isDedicated and isDedicated`, false},
		{`not not isDedicated`, true},
		{`not (not (isDedicated))`, true},
		{`not isDedicated eq false`, true}, // (not isDedicated) eq false
		{`((((state eq 'completed'))))`, true},
		{`priority eq 100 eq true`, true}, // (priority eq 100) eq true
		{"state\teq\n'completed'\r\n", true},
		{`  state eq 'completed'  `, true},
		{`(state eq'completed')and(priority eq 100)`, true},
	}
	for _, useNumber := range []bool{false, true} {
		doc := decode(t, taskJSON, useNumber)
		for _, tt := range tests {
			f, err := ParseFilter(tt.filter)
			if err != nil {
				t.Errorf("ParseFilter(%q): %v", tt.filter, err)
				continue
			}
			if got := f.Match(doc); got != tt.want {
				t.Errorf("ParseFilter(%q).Match (useNumber=%v) = %v, want %v (parsed as %s)", tt.filter, useNumber, got, tt.want, f)
			}
			// The canonical rendering must parse to an equivalent filter.
			g, err := ParseFilter(f.String())
			if err != nil {
				t.Errorf("re-parse of %q (from %q): %v", f.String(), tt.filter, err)
				continue
			}
			if g.String() != f.String() || g.Match(doc) != tt.want {
				t.Errorf("round trip of %q: %q -> %q, match %v", tt.filter, f, g, g.Match(doc))
			}
		}
	}
}

func TestMatchGoValues(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	doc := map[string]any{
		"i": 42, "i64": int64(-7), "u": uint(3), "f32": float32(1.5),
		"t": ts, "tp": &ts, "ntp": (*time.Time)(nil),
		"n": json.Number("12.5"), "bad": json.Number("xyz"),
		"nested": map[string]any{"deeper": map[string]any{"x": "y"}},
	}
	tests := []struct {
		filter string
		want   bool
	}{
		{`i eq 42`, true},
		{`i64 lt 0`, true},
		{`u eq 3`, true},
		{`f32 eq 1.5`, true},
		{`t eq datetime'2024-05-06T07:08:09Z'`, true},
		{`t gt '2024-05-06T07:08:08Z'`, true},
		{`tp eq 2024-05-06T07:08:09Z`, true},
		{`ntp eq null`, true},
		{`n gt 12`, true},
		{`bad eq 'XYZ'`, true},
		{`nested/deeper/x eq 'Y'`, true},
		{`nested/deeper eq null`, false},
		{`nested/deeper/x/y eq null`, true},
	}
	for _, tt := range tests {
		if got := MustParseFilter(tt.filter).Match(doc); got != tt.want {
			t.Errorf("%q.Match = %v, want %v", tt.filter, got, tt.want)
		}
	}
	// Nil documents and nil filters.
	if !(*Filter)(nil).Match(doc) || !(*Filter)(nil).Match(nil) {
		t.Error("nil filter must match everything")
	}
	if MustParseFilter(`id eq 'x'`).Match(nil) {
		t.Error("id eq 'x' matched a nil doc")
	}
	if !MustParseFilter(`id eq null`).Match(nil) {
		t.Error("id eq null did not match a nil doc")
	}
}

func TestParseFilterEmpty(t *testing.T) {
	for _, s := range []string{"", " ", "\t\n "} {
		f, err := ParseFilter(s)
		if f != nil || err != nil {
			t.Errorf("ParseFilter(%q) = %v, %v; want nil, nil", s, f, err)
		}
	}
	var f *Filter
	if f.Properties() != nil || f.String() != "" || f.Source() != "" {
		t.Error("nil filter accessors")
	}
	if _, ok := f.EqualityOn("state"); ok {
		t.Error("nil filter EqualityOn ok")
	}
}

func TestParseFilterErrors(t *testing.T) {
	tests := []struct {
		filter string
		pos    int
		msg    string // substring of Msg
	}{
		{`state equals 'active'`, 6, `unknown operator "equals"`},
		{`state = 'active'`, 6, `use eq`},
		{`state == 'active'`, 6, `use eq instead of ==`},
		{`state != 'active'`, 6, `use ne`},
		{`priority > 5`, 9, `use gt`},
		{`priority < 5`, 9, `use lt`},
		{`a eq 1 && b eq 2`, 7, `use and`},
		{`a eq 1 || b eq 2`, 7, `use or`},
		{`state eq "active"`, 9, `single quotes`},
		{`state eq 'active`, 9, `unterminated string`},
		{`state eq 'it''s`, 9, `unterminated string`},
		{`state eq 'active' x`, 18, `unknown operator "x"`},
		{`state eq 'active' 'x'`, 18, `unexpected "'x'"`},
		{`state eq 'active')`, 17, `unexpected ')'`},
		{`()`, 0, `empty parentheses`},
		{`state eq 'a' and ()`, 17, `empty parentheses`},
		{`(state eq 'active'`, 18, `missing ')'`},
		{`((state eq 'active')`, 20, `missing ')'`},
		{`(state eq 'a' x)`, 14, `unknown operator "x"`},
		{`state eq`, 8, `expected operand`},
		{`state eq 'a' and`, 16, `expected operand`},
		{`state eq 'a' or or`, 16, `found keyword "or"`},
		{`eq 'a'`, 0, `found keyword "eq"`},
		{`and`, 0, `found keyword "and"`},
		{`not`, 3, `expected operand`},
		{`)`, 0, `unexpected ')'`},
		{`,`, 0, `unexpected ','`},
		{`'active'`, 0, `must be a boolean expression, not a string`},
		{`42`, 0, `must be a boolean expression, not a number`},
		{`null`, 0, `must be a boolean expression, not a null`},
		{`datetime'2024-01-01T00:00:00Z'`, 0, `not a datetime`},
		{`'a' and true`, 0, `left operand of 'and'`},
		{`true and 'a'`, 9, `right operand of 'and'`},
		{`1 or true`, 0, `left operand of 'or'`},
		{`true or 1`, 8, `right operand of 'or'`},
		{`not 'a'`, 4, `operand of 'not'`},
		{`not state eq 'active'`, 0, `'not' binds tighter`},
		{`state eq 'a' eq 'b'`, 0, `cannot compare a boolean expression with a string`},
		{`'a' eq 1`, 0, `cannot compare a string with a number`},
		{`true eq 1`, 0, `cannot compare a boolean with a number`},
		{`priority gt null`, 9, `null can only be compared with eq or ne`},
		{`null le priority`, 5, `null can only be compared`},
		{`startswith(id)`, 0, `takes 2 arguments, got 1`},
		{`startswith()`, 0, `takes 2 arguments, got 0`},
		{`startswith(id, 'a', 'b')`, 0, `takes 2 arguments, got 3`},
		{`startswith(id, 5)`, 15, `argument 2 must be a string`},
		{`startswith(id eq 'a', 'b')`, 11, `argument 1 must be a string`},
		{`startswith(id, 'a'`, 18, `missing ')'`},
		{`startswith(id 'a')`, 14, `unexpected "'a'"`},
		{`startswith(id,)`, 14, `expected operand`},
		{`endswith(id, 'a')`, 0, `unsupported function "endswith"`},
		{`substringof('a', id)`, 0, `unsupported function`},
		{`creationTime gt datetime'2024-13-01T00:00:00Z'`, 16, `invalid datetime literal`},
		{`creationTime gt datetime'yesterday'`, 16, `invalid datetime literal`},
		{`creationTime gt datetime'2024-01-01'`, 16, `invalid datetime literal`},
		{`creationTime gt datetime'2024-01-01T00:00:00Z`, 24, `unterminated string`},
		{`creationTime gt guid'abc'`, 16, `unsupported typed literal guid`},
		{`creationTime gt foo'abc'`, 19, `unexpected "'abc'"`},
		{`creationTime gt 2024-01-01`, 16, `invalid datetime literal`},
		{`creationTime gt 2024-01-01T25:00:00Z`, 16, `invalid datetime literal`},
		{`priority eq 1.`, 12, `expected digits after '.'`},
		{`priority eq 1.5.3`, 12, `invalid number "1.5.3"`},
		{`priority eq 12abc`, 12, `invalid number "12abc"`},
		{`priority eq 1e`, 12, `invalid number "1e"`},
		{`priority eq 1e999`, 12, `out of range`},
		{`priority eq - 1`, 12, `unexpected character '-'`},
		{`priority eq +1`, 12, `unexpected character '+'`},
		{`executionInfo/ eq 1`, 14, `expected property name after '/'`},
		{`executionInfo/1 eq 1`, 14, `expected property name after '/'`},
		{`/state eq 1`, 0, `unexpected character '/'`},
		{`$filter eq 1`, 0, `unexpected character '$'`},
		{`metadata/any(m: m eq 1)`, 0, `unsupported function "metadata/any"`},
		{`a equals 1 == 2`, 2, `unknown operator "equals"`}, // earliest error wins
		{`a eq 1 == 2`, 7, `use eq instead of ==`},
		{"state eq 'a' \x00", 13, `unexpected byte 0x00`},
		{"stäte eq 'a'", 2, `unexpected byte 0xc3`},
		{strings.Repeat("(", 101) + "true" + strings.Repeat(")", 101), 100, `nested too deeply`},
		{strings.Repeat("not ", 101) + "true", 400, `nested too deeply`},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.filter)
		if err == nil {
			t.Errorf("ParseFilter(%q) = %s, want error", tt.filter, f)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("ParseFilter(%q) error %T %v is not *ParseError", tt.filter, err, err)
			continue
		}
		if pe.Pos != tt.pos || !strings.Contains(pe.Msg, tt.msg) {
			t.Errorf("ParseFilter(%q) = pos %d %q, want pos %d containing %q", tt.filter, pe.Pos, pe.Msg, tt.pos, tt.msg)
		}
		if want := "position"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), pe.Msg) {
			t.Errorf("Error() = %q lacks position or message", err.Error())
		}
	}
}

func TestNestingLimitAllowsReasonableDepth(t *testing.T) {
	s := strings.Repeat("(", 100) + "state eq 'completed'" + strings.Repeat(")", 100)
	if !MustParseFilter(s).Match(decode(t, taskJSON, false)) {
		t.Error("deeply parenthesised filter did not match")
	}
	// Long flat chains are not nesting and are allowed.
	var terms []string
	for range 1000 {
		terms = append(terms, "state eq 'x'")
	}
	long := strings.Join(terms, " or ") + " or state eq 'completed'"
	if !MustParseFilter(long).Match(decode(t, taskJSON, false)) {
		t.Error("long or-chain did not match")
	}
}

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{`state eq 'active'`, `(state eq 'active')`},
		{`A eq 1 AND b NE 2.5 or NOT c`, `(((A eq 1) and (b ne 2.5)) or not c)`},
		{`startsWith(id,'it''s')`, `startswith(id, 'it''s')`},
		{`t gt DateTime'2024-01-02T03:04:05+01:00'`, `(t gt datetime'2024-01-02T03:04:05+01:00')`},
		{`t gt 2024-01-02T03:04:05.5Z`, `(t gt datetime'2024-01-02T03:04:05.5Z')`},
		{`t gt datetime'2024-01-02T03:04'`, `(t gt datetime'2024-01-02T03:04:00Z')`},
		{`x eq null or y eq TRUE or z eq False`, `(((x eq null) or (y eq true)) or (z eq false))`},
		{`n lt -1e21`, `(n lt -1e+21)`},
		{`not (a eq 1)`, `not (a eq 1)`},
	}
	for _, tt := range tests {
		f := MustParseFilter(tt.in)
		if got := f.String(); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if f.Source() != tt.in {
			t.Errorf("Source() = %q, want %q", f.Source(), tt.in)
		}
	}
}

func TestProperties(t *testing.T) {
	tests := []struct {
		filter string
		want   []string
	}{
		{`state eq 'active'`, []string{"state"}},
		{`state eq 'completed' and executionInfo/exitCode ne 0`, []string{"state", "executionInfo/exitCode"}},
		{`(state eq 'running') or (state eq 'preparing')`, []string{"state"}},
		{`startswith(id, 'task-1')`, []string{"id"}},
		{`not (nodeInfo/nodeId eq 'n') and b eq c or state ne 'x'`, []string{"nodeInfo/nodeId", "b", "c", "state"}},
		{`isDedicated`, []string{"isDedicated"}},
		{`true`, nil},
		{`1 eq 1`, nil},
	}
	for _, tt := range tests {
		if got := MustParseFilter(tt.filter).Properties(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Properties(%q) = %q, want %q", tt.filter, got, tt.want)
		}
	}
}

func TestEqualityOn(t *testing.T) {
	tests := []struct {
		filter string
		prop   string
		want   []string
		ok     bool
	}{
		{`state eq 'active'`, "state", []string{"active"}, true},
		{`state EQ 'Active'`, "state", []string{"Active"}, true},
		{`'active' eq state`, "state", []string{"active"}, true},
		{`(state eq 'running') or (state eq 'preparing')`, "state", []string{"running", "preparing"}, true},
		{`state eq 'a' or (state eq 'b' or state eq 'c') or state eq 'a'`, "state", []string{"a", "b", "c"}, true},
		{`state eq 'it''s'`, "state", []string{"it's"}, true},
		{`state eq 'active'`, "id", nil, false},
		{`state eq 'active'`, "State", nil, false},
		{`state ne 'active'`, "state", nil, false},
		{`state gt 'active'`, "state", nil, false},
		{`state eq 'active' and priority eq 1`, "state", nil, false},
		{`state eq 'a' or id eq 'b'`, "state", nil, false},
		{`state eq 'a' or startswith(state, 'b')`, "state", nil, false},
		{`not (state eq 'active')`, "state", nil, false},
		{`state eq 1`, "state", nil, false},
		{`state eq null`, "state", nil, false},
		{`state eq datetime'2024-01-01T00:00:00Z'`, "state", nil, false},
		{`state eq other`, "state", nil, false},
		{`state eq 'a' eq true`, "state", nil, false},
		{`true`, "state", nil, false},
		{`executionInfo/result eq 'failure'`, "executionInfo/result", []string{"failure"}, true},
	}
	for _, tt := range tests {
		got, ok := MustParseFilter(tt.filter).EqualityOn(tt.prop)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("EqualityOn(%q, %q) = %q, %v; want %q, %v", tt.filter, tt.prop, got, ok, tt.want, tt.ok)
		}
	}
}

// TestEqualityOnAgreesWithMatch checks the pushdown contract: when
// EqualityOn succeeds, a document matches exactly when its property equals
// (case-insensitively) one of the values.
func TestEqualityOnAgreesWithMatch(t *testing.T) {
	f := MustParseFilter(`state eq 'Running' or state eq 'preparing'`)
	vals, ok := f.EqualityOn("state")
	if !ok {
		t.Fatal("not ok")
	}
	for _, st := range []string{"running", "RUNNING", "preparing", "active", "completed", ""} {
		doc := map[string]any{"state": st}
		in := false
		for _, v := range vals {
			in = in || strings.EqualFold(v, st)
		}
		if got := f.Match(doc); got != in {
			t.Errorf("state=%q: Match %v, pushdown %v", st, got, in)
		}
	}
}

func TestCompareFold(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"a", "a", 0},
		{"a", "A", 0},
		{"a", "B", -1},
		{"B", "a", 1},
		{"abc", "ABCD", -1},
		{"task-10", "Task-9", -1},
		{"\xff", "\xfe", 0}, // both decode to U+FFFD, as in strings.EqualFold
		{"é", "É", 0},
		{"", "", 0},
		{"", "a", -1},
	}
	for _, tt := range tests {
		if got := compareFold(tt.a, tt.b); got != tt.want {
			t.Errorf("compareFold(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := compareFold(tt.b, tt.a); got != -tt.want {
			t.Errorf("compareFold(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestParseErrorMessage(t *testing.T) {
	err := (&ParseError{Pos: 3, Msg: "boom"}).Error()
	if err != "odata: syntax error at position 3: boom" {
		t.Errorf("Error() = %q", err)
	}
}

func TestMustParseFilterPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	MustParseFilter("state eq")
}

func BenchmarkFilterMatch(b *testing.B) {
	doc := decode(b, taskJSON, false)
	f := MustParseFilter(`state eq 'completed' and executionInfo/exitCode ne 0`)
	if !f.Match(doc) {
		b.Fatal("benchmark filter does not match")
	}
	b.ReportAllocs()
	for b.Loop() {
		f.Match(doc)
	}
}

func BenchmarkParseFilter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFilter(`state eq 'completed' and executionInfo/exitCode ne 0`); err != nil {
			b.Fatal(err)
		}
	}
}

// fuzzDocs are the documents each successfully parsed filter is run on.
func fuzzDocs(t testing.TB) []map[string]any {
	return []map[string]any{
		nil,
		{},
		decode(t, taskJSON, false),
		decode(t, taskJSON, true),
		decode(t, `{"a": null, "b": [1, {"c": 2}], "c": {"d": {"e": "2024-01-01T00:00:00Z"}}, "x": 1e308, "y": -0, "s": "\u00ff\u212a", "t": true}`, false),
		{"state": "active", "id": "\xff\xfe", "n": json.Number("1e999"), "t": time.Time{}, "v": []any{nil}},
	}
}

func FuzzParseFilter(f *testing.F) {
	seeds := []string{
		`state eq 'active'`,
		`state eq 'completed' and executionInfo/exitCode ne 0`,
		`(state eq 'running') or (state eq 'preparing')`,
		`startswith(id, 'task-1')`,
		`executionInfo/result eq 'failure'`,
		`creationTime gt datetime'2024-01-01T00:00:00Z'`,
		`priority ge 100 and state eq 'active'`,
		`not (state eq 'active')`,
		`creationTime le 2024-01-01T00:00:00.5+01:00`,
		`a eq null or b ne -1.5e3 or not c`,
		`'it''s' eq s`,
		`true`,
		`x eq 1 eq true`,
		`STARTSWITH(a,'b') eq FALSE`,
		`state equals 'x'`,
		`(`,
		`'`,
		`datetime'`,
		`1.`,
		`a/`,
		``,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	docs := fuzzDocs(f)
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		flt2, err2 := ParseFilter(s)
		if (err == nil) != (err2 == nil) || flt.String() != flt2.String() ||
			err != nil && err.Error() != err2.Error() {
			t.Fatalf("non-deterministic parse of %q: %v/%v %q/%q", s, err, err2, flt, flt2)
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *ParseError: %v", err, err)
			}
			if pe.Pos < 0 || pe.Pos > len(s) || pe.Msg == "" {
				t.Fatalf("bad ParseError %+v for input of length %d", pe, len(s))
			}
			return
		}
		if flt == nil {
			if strings.TrimSpace(s) != "" {
				t.Fatalf("nil filter without error for %q", s)
			}
			return
		}
		results := make([]bool, len(docs))
		for i, d := range docs {
			results[i] = flt.Match(d)
		}
		props := flt.Properties()
		if len(props) == 0 {
			// A filter of literals only is constant.
			for i := range results {
				if results[i] != results[0] {
					t.Fatalf("filter %q references no property but its result varies", s)
				}
			}
		}
		for _, p := range props {
			if invalidPathAt(p) >= 0 {
				t.Fatalf("invalid property path %q from %q", p, s)
			}
		}
		// The canonical form re-parses to itself and evaluates the same.
		canon := flt.String()
		g, err := ParseFilter(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if g.String() != canon {
			t.Fatalf("canonical form not stable: %q -> %q", canon, g.String())
		}
		if !reflect.DeepEqual(g.Properties(), props) {
			t.Fatalf("properties changed across round trip: %q vs %q", props, g.Properties())
		}
		for i, d := range docs {
			if g.Match(d) != results[i] {
				t.Fatalf("round trip of %q via %q changed Match on doc %d", s, canon, i)
			}
		}
		_, _ = flt.EqualityOn("state")
		if vals, ok := flt.EqualityOn(props0(props)); ok {
			for _, v := range vals {
				doc := map[string]any{}
				setPath(doc, props[0], v)
				if !flt.Match(doc) {
					t.Fatalf("EqualityOn(%q) of %q gave %q but a doc with that value does not match", props[0], s, v)
				}
			}
		}
	})
}

func props0(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return p[0]
}

func setPath(doc map[string]any, path string, v any) {
	segs := strings.Split(path, "/")
	for _, s := range segs[:len(segs)-1] {
		m := map[string]any{}
		doc[s] = m
		doc = m
	}
	doc[segs[len(segs)-1]] = v
}
