package scheduler

import "testing"

func TestPick(t *testing.T) {
	cands := []Candidate{{Free: 2}, {Free: 4}, {Free: 1}, {Free: 4}}
	cases := []struct {
		name     string
		required int
		fill     Fill
		want     int
	}{
		{"SpreadMostFree", 1, Spread, 1},
		{"PackFewestFree", 1, Pack, 2},
		{"PackSkipsTooSmall", 2, Pack, 0},
		{"SpreadTooBig", 5, Spread, -1},
		{"PackExact", 4, Pack, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Pick(cands, c.required, c.fill); got != c.want {
				t.Fatalf("Pick(%d, %v) = %d, want %d", c.required, c.fill, got, c.want)
			}
		})
	}
	if got := Pick(nil, 1, Spread); got != -1 {
		t.Fatalf("Pick(nil) = %d", got)
	}
}

func BenchmarkPick(b *testing.B) {
	cands := make([]Candidate, 64)
	for i := range cands {
		cands[i].Free = i % 5
	}
	for b.Loop() {
		Pick(cands, 1, Spread)
	}
}
