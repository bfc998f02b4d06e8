package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the result of one `kiln bench` run: what --out writes.
type Report struct {
	Scale     string    `json:"scale"`
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	Machine   Machine   `json:"machine"`
	Scenarios []Result  `json:"scenarios"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpuModel,omitempty"`
	MemBytes   int64  `json:"memBytes,omitempty"`
	GoVersion  string `json:"goVersion"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	Kernel     string `json:"kernel,omitempty"`
}

// Result is one scenario's outcome.
type Result struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Seconds     float64  `json:"seconds"`
	Figures     []Figure `json:"figures"`
	// Notes say what exactly was measured.
	Notes []string `json:"notes,omitempty"`
	Error string   `json:"error,omitempty"`
}

// Figure is one measured number, with the physical limits it is compared
// against (measured in the same run) and the target, if any.
type Figure struct {
	// Key is stable across runs ("ingest.rate.8clients"); Name is for people.
	Key    string  `json:"key"`
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Limits []Limit `json:"limits,omitempty"`
	Target *Target `json:"target,omitempty"`
}

// Limit is a physical bound on a figure: the same work done by the
// simplest thing that could do it (the store alone, xargs, a bare request).
type Limit struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Target is a goal of the performance issue: Value must be Op ("<=" or
// ">=") Bound.
type Target struct {
	Op    string  `json:"op"`
	Bound float64 `json:"bound"`
	Text  string  `json:"text"`
	Met   bool    `json:"met"`
}

func (r *Result) add(f Figure) *Figure {
	if f.Target != nil {
		switch f.Target.Op {
		case "<=":
			f.Target.Met = f.Value <= f.Target.Bound
		case ">=":
			f.Target.Met = f.Value >= f.Target.Bound
		default:
			panic("bench: target op " + f.Target.Op)
		}
	}
	r.Figures = append(r.Figures, f)
	return &r.Figures[len(r.Figures)-1]
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func atMost(bound float64, text string) *Target  { return &Target{Op: "<=", Bound: bound, Text: text} }
func atLeast(bound float64, text string) *Target { return &Target{Op: ">=", Bound: bound, Text: text} }

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// PrintTable prints one line per figure: value, limits, target.
func (r *Report) PrintTable(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "kiln bench --scale %s: %d CPUs (%s), %s memory, %s %s/%s, %.0fs\n\n",
		r.Scale, m.CPUs, orDash(m.CPUModel), formatBytes(float64(m.MemBytes)), m.GoVersion, m.OS, m.Arch, r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tVALUE\tLIMIT (same run)\tTARGET")
	for _, s := range r.Scenarios {
		if s.Error != "" {
			fmt.Fprintf(tw, "%s\tFAILED: %s\t\t\t\n", s.Name, oneLine(s.Error))
		}
		for _, f := range s.Figures {
			var limits []string
			for _, l := range f.Limits {
				limits = append(limits, l.Name+" "+formatValue(l.Value, l.Unit))
			}
			target := ""
			if f.Target != nil {
				mark := "✗"
				if f.Target.Met {
					mark = "✓"
				}
				target = mark + " " + f.Target.Text
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, f.Name, formatValue(f.Value, f.Unit), strings.Join(limits, "; "), target)
		}
	}
	tw.Flush()
	for _, s := range r.Scenarios {
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, n)
		}
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatValue prints a figure with its unit, readably.
func formatValue(v float64, unit string) string {
	switch unit {
	case "bytes":
		return formatBytes(v)
	case "ms":
		switch {
		case v < 1:
			return strconv.FormatFloat(v*1000, 'f', 0, 64) + " µs"
		case v < 10:
			return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
		case v < 1000:
			return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
		}
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + " s"
	case "s":
		if v < 1 {
			return strconv.FormatFloat(v*1000, 'f', 0, 64) + " ms"
		}
		return strconv.FormatFloat(v, 'f', 2, 64) + " s"
	case "x":
		return strconv.FormatFloat(v, 'f', 2, 64) + "×"
	case "cores":
		return strconv.FormatFloat(v, 'f', 3, 64) + " cores"
	}
	if v >= 100 {
		return groupThousands(int64(math.Round(v))) + " " + unit
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + unit
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func formatBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return strconv.FormatFloat(v/(1<<30), 'f', 2, 64) + " GiB"
	case v >= 1<<20:
		return strconv.FormatFloat(v/(1<<20), 'f', 1, 64) + " MiB"
	case v >= 1<<10:
		return strconv.FormatFloat(v/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " B"
}

// readMachine describes this machine from the Go runtime and /proc.
func readMachine() Machine {
	m := Machine{
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if kb, err := procStatusField("/proc/meminfo", "MemTotal"); err == nil {
		m.MemBytes = kb * 1024
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Sample statistics.

// quantile returns the q-quantile (0..1) of xs by nearest rank; xs is
// sorted in place.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

func durMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
