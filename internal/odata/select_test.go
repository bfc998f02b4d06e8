package odata

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseSelect(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"$select=", nil},
		{"id", []string{"id"}},
		{"id,state,executionInfo", []string{"id", "state", "executionInfo"}},
		{"$select=id,state,executionInfo", []string{"id", "state", "executionInfo"}},
		{"$SELECT=id", []string{"id"}},
		{" id , state\t,\texecutionInfo ", []string{"id", "state", "executionInfo"}},
		{"executionInfo/exitCode,nodeInfo/nodeId", []string{"executionInfo/exitCode", "nodeInfo/nodeId"}},
		{"id,state,id", []string{"id", "state"}},
		{"_x,a1_b2", []string{"_x", "a1_b2"}},
		{"id,State", []string{"id", "State"}},
		{"*", nil},
		{"id,*", nil},
	}
	for _, tt := range tests {
		got, err := ParseSelect(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSelect(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSelectErrors(t *testing.T) {
	tests := []struct {
		in  string
		pos int
		msg string
	}{
		{",", 0, "empty property name"},
		{"id,", 3, "empty property name"},
		{"id,,state", 3, "empty property name"},
		{"id, ,state", 4, "empty property name"},
		{"$select=id,", 11, "empty property name"},
		{"id,1abc", 3, `invalid property name "1abc"`},
		{"id, st-ate", 6, `invalid property name "st-ate"`},
		{"$select=id,a b", 12, `invalid property name "a b"`},
		{"executionInfo/", 14, `invalid property name`},
		{"/id", 0, `invalid property name`},
		{"a//b", 2, `invalid property name`},
		{"id;state", 2, `invalid property name`},
		{"$select=$expand", 8, `invalid property name`},
		{"stäte", 2, `invalid property name`},
		{"'id'", 0, `invalid property name`},
		{"**", 0, `invalid property name`},
	}
	for _, tt := range tests {
		got, err := ParseSelect(tt.in)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("ParseSelect(%q) = %q, %v; want *ParseError", tt.in, got, err)
			continue
		}
		if got != nil || pe.Pos != tt.pos || !strings.Contains(pe.Msg, tt.msg) {
			t.Errorf("ParseSelect(%q) = %q, pos %d %q; want pos %d containing %q", tt.in, got, pe.Pos, pe.Msg, tt.pos, tt.msg)
		}
	}
}

func TestApplySelect(t *testing.T) {
	doc := decode(t, taskJSON, false)
	tests := []struct {
		props []string
		want  []string // keys of the result
	}{
		{[]string{"id", "state"}, []string{"id", "state"}},
		{[]string{"id", "State"}, []string{"id"}}, // case-sensitive
		{[]string{"executionInfo/exitCode"}, []string{"executionInfo"}},
		{[]string{"executionInfo/exitCode", "executionInfo"}, []string{"executionInfo"}},
		{[]string{"nosuch"}, []string{}},
		{[]string{"note"}, []string{"note"}}, // present with a null value
	}
	for _, tt := range tests {
		got := ApplySelect(doc, tt.props)
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		if len(keys) != len(tt.want) {
			t.Errorf("ApplySelect(%q) keys = %q, want %q", tt.props, keys, tt.want)
			continue
		}
		for _, k := range tt.want {
			if v, ok := got[k]; !ok || !reflect.DeepEqual(v, doc[k]) {
				t.Errorf("ApplySelect(%q)[%q] = %v, %v; want %v", tt.props, k, v, ok, doc[k])
			}
		}
	}

	// No props means everything, as a copy.
	all := ApplySelect(doc, nil)
	if !reflect.DeepEqual(all, doc) {
		t.Error("ApplySelect(doc, nil) is not a copy of doc")
	}
	all["id"] = "changed"
	if doc["id"] != "task-17" {
		t.Error("ApplySelect(doc, nil) shares the top-level map")
	}
	sel := ApplySelect(doc, []string{"id"})
	sel["state"] = "x"
	if doc["state"] != "completed" {
		t.Error("ApplySelect result shares the top-level map")
	}
	if ApplySelect(nil, []string{"id"}) != nil {
		t.Error("ApplySelect(nil) != nil")
	}

	// End to end with ParseSelect.
	props, err := ParseSelect("$select=id,state,executionInfo")
	if err != nil {
		t.Fatal(err)
	}
	got := ApplySelect(doc, props)
	if len(got) != 3 || got["id"] != "task-17" || got["state"] != "completed" || got["executionInfo"] == nil {
		t.Errorf("ApplySelect = %v", got)
	}
}
