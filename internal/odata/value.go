package odata

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// kind is the runtime (and, for literals, static) type of a value.
type kind uint8

const (
	kMissing kind = iota // property absent from the document
	kNull                // JSON null / null literal
	kBool
	kNumber
	kString
	kTime
	kOther // arrays, objects and anything else: only eq/ne null are meaningful
)

func (k kind) String() string {
	switch k {
	case kMissing:
		return "missing"
	case kNull:
		return "null"
	case kBool:
		return "boolean"
	case kNumber:
		return "number"
	case kString:
		return "string"
	case kTime:
		return "datetime"
	default:
		return "complex value"
	}
}

// value is a tagged union holding one evaluated operand.
type value struct {
	k kind
	b bool
	n float64
	s string
	t time.Time
	// For kString values: tKnown reports that the string has already been
	// checked for being a timestamp (done once for literals at parse time),
	// and isT whether it is one (then t holds it).
	tKnown bool
	isT    bool
}

func (v value) nullish() bool { return v.k == kMissing || v.k == kNull }

// truth is the boolean interpretation of a value: only boolean true is true.
func (v value) truth() bool { return v.k == kBool && v.b }

func boolValue(b bool) value { return value{k: kBool, b: b} }

func stringLiteral(s string) value {
	v := value{k: kString, s: s, tKnown: true}
	v.t, v.isT = parseTime(s)
	return v
}

// fromJSON converts a value decoded by encoding/json (or built by Go code)
// into a value.
func fromJSON(x any) value {
	switch x := x.(type) {
	case nil:
		return value{k: kNull}
	case string:
		return value{k: kString, s: x}
	case float64:
		return value{k: kNumber, n: x}
	case bool:
		return value{k: kBool, b: x}
	case json.Number:
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return value{k: kNumber, n: f}
		}
		return value{k: kString, s: string(x)}
	case int:
		return value{k: kNumber, n: float64(x)}
	case int64:
		return value{k: kNumber, n: float64(x)}
	case int32:
		return value{k: kNumber, n: float64(x)}
	case uint:
		return value{k: kNumber, n: float64(x)}
	case uint64:
		return value{k: kNumber, n: float64(x)}
	case uint32:
		return value{k: kNumber, n: float64(x)}
	case float32:
		return value{k: kNumber, n: float64(x)}
	case time.Time:
		return value{k: kTime, t: x}
	case *time.Time:
		if x == nil {
			return value{k: kNull}
		}
		return value{k: kTime, t: *x}
	default:
		return value{k: kOther}
	}
}

// timeLayouts are accepted for datetime literals and timestamp strings.
// Layouts without a zone are interpreted as UTC.
var timeLayouts = []string{
	time.RFC3339Nano, // also accepts no / fewer fractional digits
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
}

// looksLikeTime is a cheap pre-check (YYYY-MM-DDT...) so that ordinary
// strings are never handed to time.Parse.
func looksLikeTime(s string) bool {
	if len(s) < 16 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func parseTime(s string) (time.Time, bool) {
	if !looksLikeTime(s) {
		return time.Time{}, false
	}
	if s[10] == 't' {
		s = s[:10] + "T" + s[11:]
	}
	if n := len(s); s[n-1] == 'z' {
		s = s[:n-1] + "Z"
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// timeOf returns the value as a time if it is one or is a timestamp string.
func timeOf(v value) (time.Time, bool) {
	switch v.k {
	case kTime:
		return v.t, true
	case kString:
		if v.tKnown {
			return v.t, v.isT
		}
		return parseTime(v.s)
	}
	return time.Time{}, false
}

// bothTimes reports whether the two values should be compared as times and,
// if so, returns them. A datetime value forces the other side to be parsed;
// two strings are compared as times only if both are timestamps.
func bothTimes(l, r value) (time.Time, time.Time, bool) {
	if l.k == kString && r.k == kString {
		// Check the side whose answer is already known first so that a
		// non-timestamp literal avoids parsing the document value at all.
		if r.tKnown && !r.isT || l.tKnown && !l.isT {
			return time.Time{}, time.Time{}, false
		}
	} else if !(l.k == kTime || r.k == kTime) {
		return time.Time{}, time.Time{}, false
	}
	lt, ok := timeOf(l)
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	rt, ok := timeOf(r)
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	return lt, rt, true
}

// equal implements eq. Missing and null are equal to each other and to
// nothing else; values of different types are unequal; strings compare
// case-insensitively (or as times when both are timestamps).
func equal(l, r value) bool {
	ln, rn := l.nullish(), r.nullish()
	if ln || rn {
		return ln && rn
	}
	if lt, rt, ok := bothTimes(l, r); ok {
		return lt.Equal(rt)
	}
	if l.k != r.k {
		return false
	}
	switch l.k {
	case kNumber:
		return l.n == r.n
	case kBool:
		return l.b == r.b
	case kString:
		return strings.EqualFold(l.s, r.s)
	}
	return false
}

// compare implements the ordering operators. ok is false when the values
// are not comparable (missing, null, different types, complex values), in
// which case every ordering comparison is false.
func compare(l, r value) (c int, ok bool) {
	if l.nullish() || r.nullish() {
		return 0, false
	}
	if lt, rt, ok := bothTimes(l, r); ok {
		return lt.Compare(rt), true
	}
	if l.k != r.k {
		return 0, false
	}
	switch l.k {
	case kNumber:
		switch {
		case l.n < r.n:
			return -1, true
		case l.n > r.n:
			return 1, true
		case l.n == r.n:
			return 0, true
		}
		return 0, false // NaN (only possible from Go-built documents)
	case kBool:
		switch {
		case l.b == r.b:
			return 0, true
		case r.b:
			return -1, true
		default:
			return 1, true
		}
	case kString:
		return compareFold(l.s, r.s), true
	}
	return 0, false
}

// compareFold orders strings lexically, ignoring case, consistently with
// strings.EqualFold: it returns 0 exactly when EqualFold reports true.
func compareFold(a, b string) int {
	if strings.EqualFold(a, b) {
		return 0
	}
	origA, origB := a, b
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		a, b = a[na:], b[nb:]
		if ra == rb {
			continue
		}
		la, lb := unicode.ToLower(ra), unicode.ToLower(rb)
		if la != lb {
			if la < lb {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	// Not EqualFold, yet no lower-cased difference (invalid UTF-8, exotic
	// folding): fall back to byte order, which is non-zero here.
	return strings.Compare(origA, origB)
}

func formatNumber(n float64) string {
	if math.IsInf(n, 0) || math.IsNaN(n) {
		return "null"
	}
	return strconv.FormatFloat(n, 'g', -1, 64)
}
