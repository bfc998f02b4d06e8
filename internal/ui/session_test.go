package ui

import (
	"testing"
	"time"
)

// TestSessionsIdleExpiry: a session unused for longer than the idle time
// is gone; using it keeps it alive; removed sessions are gone.
func TestSessionsIdleExpiry(t *testing.T) {
	s := newSessions(50 * time.Millisecond)
	a := s.create("acct", []byte("k"))
	b := s.create("acct", []byte("k"))
	if a == b || len(a) < 40 {
		t.Fatalf("tokens %q %q", a, b)
	}
	if got, ok := s.get(a); !ok || got.account != "acct" {
		t.Fatalf("fresh session: %v %v", got, ok)
	}
	s.remove(b)
	if _, ok := s.get(b); ok {
		t.Fatal("a removed session still works")
	}
	time.Sleep(120 * time.Millisecond) // more than the idle time: expired whatever the scheduling
	if _, ok := s.get(a); ok {
		t.Fatal("an idle session outlived the idle time")
	}
	if _, ok := s.get("not-a-token"); ok {
		t.Fatal("an unknown token is a session")
	}
}
