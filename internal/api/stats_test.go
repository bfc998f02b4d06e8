package api

import (
	"encoding/json"
	"testing"
)

func TestDropMember(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"Absent", `{"id":"a","state":"active"}`, `{"id":"a","state":"active"}`},
		{"First", `{"stats":{"url":"u","x":[1,{"y":"}"}]},"id":"a"}`, `{"id":"a"}`},
		{"Middle", `{"id":"a","stats":{"readIOps":3},"state":"active"}`, `{"id":"a","state":"active"}`},
		{"Last", `{"id":"a","stats":{"readIOps":3}}`, `{"id":"a"}`},
		{"Only", `{"stats":{}}`, `{}`},
		{"Spaces", "{ \"id\" : \"a\" ,\n \"stats\" : { \"k\" : \"v\" } \n}", "{ \"id\" : \"a\" }"},
		{"NestedNotTopLevel", `{"executionInfo":{"stats":1},"id":"a"}`, `{"executionInfo":{"stats":1},"id":"a"}`},
		{"InStringValue", `{"displayName":"\"stats\":1","id":"a"}`, `{"displayName":"\"stats\":1","id":"a"}`},
		{"EscapedQuoteBefore", `{"displayName":"a\"b","stats":{"u":"\\"},"z":true}`, `{"displayName":"a\"b","z":true}`},
		{"NotAnObject", `["stats"]`, `["stats"]`},
		{"Truncated", `{"id":"a","stats":{"k":`, `{"id":"a","stats":{"k":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(dropMember([]byte(tc.in), "stats"))
			if got != tc.want {
				t.Fatalf("dropMember(%s) = %s, want %s", tc.in, got, tc.want)
			}
			if json.Valid([]byte(tc.in)) && !json.Valid([]byte(got)) {
				t.Fatalf("result %s is not valid JSON", got)
			}
		})
	}
}

func FuzzDropMember(f *testing.F) {
	for _, s := range []string{`{"a":1,"stats":{"b":[1,2]},"c":"x"}`, `{"stats":null}`, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := dropMember([]byte(in), "stats")
		if !json.Valid([]byte(in)) {
			return
		}
		if !json.Valid(got) {
			t.Fatalf("dropMember(%s) = %s: not valid JSON", in, got)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(got, &m) == nil {
			if _, ok := m["stats"]; ok {
				var orig map[string]json.RawMessage
				_ = json.Unmarshal([]byte(in), &orig)
				// Duplicate keys: only the first is dropped.
				if len(orig) == len(m) {
					t.Fatalf("dropMember(%s) kept stats: %s", in, got)
				}
			}
		}
	})
}
