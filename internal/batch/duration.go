package batch

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxDuration is what Azure reports for "unlimited" durations
// (P10675199DT2H48M5.4775807S, the largest .NET TimeSpan).
const MaxDuration = time.Duration(1<<63 - 1)

// MaxDurationISO is MaxDuration in Azure's ISO 8601 spelling.
const MaxDurationISO = "P10675199DT2H48M5.4775807S"

// ParseDuration parses an ISO 8601 duration as Azure Batch writes them
// (PnDTnHnMnS, also PnW; years and months are refused as ambiguous).
// Values beyond MaxDuration saturate.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	if !strings.HasPrefix(s, "P") && !strings.HasPrefix(s, "p") {
		return 0, fmt.Errorf("duration %q does not start with P", orig)
	}
	s = s[1:]
	if s == "" {
		return 0, fmt.Errorf("duration %q is empty", orig)
	}
	var total float64
	inTime := false
	for s != "" {
		if s[0] == 'T' || s[0] == 't' {
			if inTime {
				return 0, fmt.Errorf("duration %q has two T", orig)
			}
			inTime = true
			s = s[1:]
			if s == "" {
				return 0, fmt.Errorf("duration %q ends after T", orig)
			}
			continue
		}
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == ',') {
			i++
		}
		if i == 0 || i == len(s) {
			return 0, fmt.Errorf("duration %q is malformed", orig)
		}
		n, err := strconv.ParseFloat(strings.ReplaceAll(s[:i], ",", "."), 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q is malformed", orig)
		}
		unit := s[i] | 0x20 // lower case
		s = s[i+1:]
		var scale float64
		switch {
		case !inTime && unit == 'w':
			scale = 7 * 24 * 3600
		case !inTime && unit == 'd':
			scale = 24 * 3600
		case inTime && unit == 'h':
			scale = 3600
		case inTime && unit == 'm':
			scale = 60
		case inTime && unit == 's':
			scale = 1
		default:
			return 0, fmt.Errorf("duration %q has an unsupported unit %q", orig, string(unit))
		}
		total += n * scale
	}
	if total*1e9 >= float64(MaxDuration) {
		return MaxDuration, nil
	}
	return time.Duration(total * 1e9), nil
}

// FormatDuration writes d the way Azure does (e.g. PT1H30M, P7D, PT0.5S).
func FormatDuration(d time.Duration) string {
	if d >= MaxDuration {
		return MaxDurationISO
	}
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("P")
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		fmt.Fprintf(&b, "%dD", days)
	}
	if d == 0 {
		return b.String()
	}
	b.WriteString("T")
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dH", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dM", m)
		d -= m * time.Minute
	}
	if d > 0 {
		sec := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
		b.WriteString(sec + "S")
	}
	return b.String()
}
