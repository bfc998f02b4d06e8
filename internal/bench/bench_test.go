package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/bench"
)

// kilnBin is the kiln binary, built once for the package.
var kilnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kiln-bench-bin")
	if err != nil {
		panic(err)
	}
	kilnBin = filepath.Join(dir, "kiln")
	build := exec.Command("go", "build", "-o", kilnBin, "../../cmd/kiln")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kiln:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestBenchTiny runs every scenario once at tiny scale through the real
// command, `kiln bench`, and checks that each produced its figures. It
// asserts nothing about speed: it keeps the scenarios from rotting.
func TestBenchTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every bench scenario (about 15s)")
	}
	out := filepath.Join(t.TempDir(), "r.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kilnBin, "bench", "--scale", "tiny", "--out", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("kiln bench --scale tiny took %s:\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	if err != nil {
		t.Fatalf("kiln bench: %v\nstderr:\n%s", err, stderr.String())
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results: %v", err)
	}
	if rep.Scale != bench.ScaleTiny || rep.Machine.CPUs <= 0 || rep.Machine.GoVersion == "" {
		t.Errorf("report header: scale %q, machine %+v", rep.Scale, rep.Machine)
	}
	var names []string
	for _, s := range rep.Scenarios {
		names = append(names, s.Name)
		if s.Error != "" {
			t.Errorf("scenario %s failed: %s", s.Name, s.Error)
			continue
		}
		if len(s.Figures) == 0 {
			t.Errorf("scenario %s: no figures", s.Name)
		}
		limits := 0
		for _, f := range s.Figures {
			if f.Key == "" || f.Name == "" || f.Unit == "" {
				t.Errorf("scenario %s: figure without key, name or unit: %+v", s.Name, f)
			}
			if !(f.Value > 0) {
				t.Errorf("scenario %s: %s = %v, want > 0", s.Name, f.Key, f.Value)
			}
			for _, l := range f.Limits {
				limits++
				if !(l.Value > 0) {
					t.Errorf("scenario %s: %s: limit %q = %v, want > 0", s.Name, f.Key, l.Name, l.Value)
				}
			}
		}
		if limits == 0 {
			t.Errorf("scenario %s: no figure has a limit measured in the same run", s.Name)
		}
	}
	if !slices.Equal(names, bench.ScenarioNames()) {
		t.Errorf("scenarios %v, want %v", names, bench.ScenarioNames())
	}
}

// TestBenchFlags checks the command's argument checking without running
// anything.
func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--scale", "huge"},
		{"bench", "--scale", "tiny", "--scenario", "nosuch"},
	} {
		out, err := exec.Command(kilnBin, args...).CombinedOutput()
		if err == nil {
			t.Errorf("kiln %v succeeded; want an error\n%s", args, out)
		}
	}
}
