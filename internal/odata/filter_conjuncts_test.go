package odata

import "testing"

func TestConjuncts(t *testing.T) {
	f := MustParseFilter("state eq 'completed' and (executionInfo/result eq 'failure' and startswith(id, 't')) and (priority gt 1 or id eq 'x')")
	cs := f.Conjuncts()
	if len(cs) != 4 {
		t.Fatalf("got %d conjuncts: %v", len(cs), cs)
	}
	if v, ok := cs[0].EqualityOn("state"); !ok || v[0] != "completed" {
		t.Fatalf("first conjunct: %v %v", v, ok)
	}
	if v, ok := cs[1].EqualityOn("executionInfo/result"); !ok || v[0] != "failure" {
		t.Fatalf("second conjunct: %v %v", v, ok)
	}
	doc := map[string]any{"id": "t1", "state": "completed", "priority": 2.0, "executionInfo": map[string]any{"result": "failure"}}
	for _, c := range cs {
		if !c.Match(doc) {
			t.Fatalf("conjunct %v does not match", c)
		}
	}
	if got := MustParseFilter("state eq 'active'").Conjuncts(); len(got) != 1 {
		t.Fatalf("single: %d", len(got))
	}
	var nilF *Filter
	if nilF.Conjuncts() != nil {
		t.Fatal("nil filter has conjuncts")
	}
}
