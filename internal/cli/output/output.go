// Package output renders CLI results: aligned tables for people and indented
// JSON (Azure's wire shape, as the azbatch models marshal it) for scripts.
package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Format is how a command prints its result.
type Format string

const (
	// FormatTable prints aligned columns (the default).
	FormatTable Format = "table"
	// FormatJSON prints the SDK model marshalled as indented JSON.
	FormatJSON Format = "json"
)

// FormatDefault is the format used when --output is not given.
const FormatDefault = FormatTable

// ParseFormat validates an --output value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatTable, FormatJSON:
		return f, nil
	case "":
		return FormatDefault, nil
	default:
		return "", fmt.Errorf("invalid output format %q: use table or json", s)
	}
}

// JSON writes v as indented JSON followed by a newline. A nil slice prints as
// [] so that a list command always prints a JSON array.
func JSON(w io.Writer, v any) error {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
		v = []any{}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// Table writes rows as aligned columns with a header line.
type Table struct {
	w   io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

// NewTable starts a table on w with the given column headers.
func NewTable(w io.Writer, headers ...string) *Table {
	t := &Table{w: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 8, 2, ' ', 0)
	if len(headers) > 0 {
		t.Row(headers...)
	}
	return t
}

// Row adds one row. Tabs and line breaks inside cells become spaces so that
// they cannot break the layout.
func (t *Table) Row(cells ...string) {
	for i, c := range cells {
		cells[i] = clean(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// Flush writes the table out, without trailing blanks on its lines.
func (t *Table) Flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	lines := strings.SplitAfter(t.buf.String(), "\n")
	t.buf.Reset()
	var out strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		out.WriteString(strings.TrimRight(l, " \n"))
		out.WriteByte('\n')
	}
	_, err := io.WriteString(t.w, out.String())
	return err
}

// Details writes "Key:  value" pairs, aligned, one per line; the layout of
// show commands in table format. Pairs with an empty value are skipped.
func Details(w io.Writer, pairs ...[2]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, p := range pairs {
		if p[1] == "" {
			continue
		}
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], clean(p[1]))
	}
	return tw.Flush()
}

func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r', '\v', '\f':
			return ' '
		}
		return r
	}, s)
}

// Truncate shortens s to at most n runes, ending with "..." when cut.
func Truncate(s string, n int) string {
	r := []rune(s)
	if n <= 0 || len(r) <= n {
		return s
	}
	if n <= 3 {
		return string(r[:n])
	}
	return string(r[:n-3]) + "..."
}

// Str returns *p, or "" for nil. It accepts any string-based type (the
// azbatch enums are such types).
func Str[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

// Int returns *p in decimal, or "" for nil.
func Int[T ~int32 | ~int64 | ~int](p *T) string {
	if p == nil {
		return ""
	}
	return strconv.FormatInt(int64(*p), 10)
}

// Bool returns "true"/"false", or "" for nil.
func Bool(p *bool) string {
	if p == nil {
		return ""
	}
	return strconv.FormatBool(*p)
}

// TimeLayout is how tables print times (local time zone).
const TimeLayout = "2006-01-02 15:04:05"

// Time returns *t in local time as TimeLayout, or "" for nil or zero.
func Time(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.Local().Format(TimeLayout)
}

// Size formats a byte count for people: 512 B, 1.5 KiB, 3.2 MiB.
func Size(p *int64) string {
	if p == nil {
		return ""
	}
	n := *p
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
