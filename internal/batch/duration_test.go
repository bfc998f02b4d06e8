package batch

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	cases := map[string]time.Duration{
		"PT1H":         time.Hour,
		"P7D":          7 * 24 * time.Hour,
		"PT1H30M":      90 * time.Minute,
		"PT0.5S":       500 * time.Millisecond,
		"P1DT2H":       26 * time.Hour,
		"P1W":          7 * 24 * time.Hour,
		MaxDurationISO: MaxDuration,
	}
	for in, want := range cases {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "1H", "P", "PT", "P1H", "PTxS", "P1Y"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", bad)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 90 * time.Minute, 7 * 24 * time.Hour, 1500 * time.Millisecond, 26*time.Hour + 3*time.Second, MaxDuration} {
		s := FormatDuration(d)
		back, err := ParseDuration(s)
		if err != nil || back != d {
			t.Errorf("round trip %v -> %q -> %v, %v", d, s, back, err)
		}
	}
}
