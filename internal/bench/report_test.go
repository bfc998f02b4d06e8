package bench

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, c := range []struct{ q, want float64 }{{0.5, 5}, {0.99, 10}, {0.1, 1}, {0, 1}, {1, 10}} {
		if got := quantile(append([]float64(nil), xs...), c.q); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile of nothing = %v", got)
	}
}

func TestParseDate(t *testing.T) {
	got, err := parseDate([]byte("1732530001.250000001\n"))
	if err != nil || !got.Equal(time.Unix(1732530001, 250000001)) {
		t.Errorf("parseDate = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1732530001", "1732530001.25", "x.123456789"} {
		if _, err := parseDate([]byte(bad)); err == nil {
			t.Errorf("parseDate(%q) succeeded", bad)
		}
	}
}

func TestProcReadings(t *testing.T) {
	s, err := cpuSeconds(os.Getpid())
	if err != nil || s < 0 {
		t.Fatalf("cpuSeconds = %v, %v", s, err)
	}
	kb, err := procStatusField("/proc/self/status", "VmRSS")
	if err != nil || kb <= 0 {
		t.Fatalf("VmRSS = %v, %v", kb, err)
	}
	if m := readMachine(); m.CPUs <= 0 || m.MemBytes <= 0 {
		t.Errorf("machine %+v", m)
	}
}

func TestTargetsAndTable(t *testing.T) {
	var r Result
	r.add(Figure{Key: "a", Name: "rate", Value: 60_000, Unit: "tasks/s", Target: atLeast(50_000, "≥ 50,000"),
		Limits: []Limit{{Name: "store", Value: 90_000, Unit: "tasks/s"}}})
	r.add(Figure{Key: "b", Name: "latency", Value: 7.5, Unit: "ms", Target: atMost(5, "≤ 5 ms")})
	r.add(Figure{Key: "c", Name: "rss", Value: 300 << 20, Unit: "bytes"})
	if !r.Figures[0].Target.Met || r.Figures[1].Target.Met {
		t.Errorf("targets: %+v %+v", r.Figures[0].Target, r.Figures[1].Target)
	}
	rep := Report{Scale: "tiny", Machine: Machine{CPUs: 2}, Scenarios: []Result{r, {Name: "broken", Error: "boom"}}}
	var b bytes.Buffer
	rep.PrintTable(&b)
	for _, want := range []string{"60,000 tasks/s", "store 90,000 tasks/s", "✓ ≥ 50,000", "7.50 ms", "✗ ≤ 5 ms", "300.0 MiB", "FAILED: boom"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if got := rep.Failed(); len(got) != 1 || got[0] != "broken" {
		t.Errorf("Failed() = %v", got)
	}
}

func TestParamsFor(t *testing.T) {
	for _, s := range []string{ScaleTiny, ScaleSmall, ScaleFull} {
		p, err := ParamsFor(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.IngestClients) != len(p.IngestTasks) || p.QueryFailed > 1000 || p.PoolStartRuns < 1 {
			t.Errorf("%s: inconsistent params %+v", s, p)
		}
	}
	if _, err := ParamsFor("huge"); err == nil {
		t.Error("ParamsFor(huge) succeeded")
	}
}
