package taskrunner_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/taskrunner"
)

type testBundle struct {
	dir    string
	stdout string
	stderr string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	dir := t.TempDir()
	return &testBundle{
		dir:    dir,
		stdout: filepath.Join(dir, "stdout.txt"),
		stderr: filepath.Join(dir, "stderr.txt"),
	}
}

func (b *testBundle) spec(args ...string) taskrunner.Spec {
	return taskrunner.Spec{
		Args:   args,
		Dir:    filepath.Join(b.dir, "wd"),
		Env:    []string{"PATH=/usr/bin:/bin"},
		Stdout: b.stdout,
		Stderr: b.stderr,
	}
}

func start(t *testing.T, spec taskrunner.Spec) *taskrunner.Process {
	t.Helper()
	p, err := taskrunner.Start(spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Kill(); p.Wait() })
	return p
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gone reports whether pid no longer runs (absent, or a zombie nobody reaped).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	eventually(t, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

func TestStart(t *testing.T) {
	t.Parallel()

	t.Run("ExitCodes", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			script string
			want   int
		}{
			{"exit 0", 0},
			{"exit 3", 3},
			{"exit 255", 255},
			{"kill -TERM $$", 128 + int(syscall.SIGTERM)},
			{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
		} {
			b := setup(t)
			res := start(t, b.spec("/bin/sh", "-c", tc.script)).Wait()
			if res.ExitCode != tc.want || res.Killed || res.TimedOut {
				t.Errorf("%q: got %+v, want exit code %d", tc.script, res, tc.want)
			}
			if res.StartTime.IsZero() || res.EndTime.Before(res.StartTime) {
				t.Errorf("%q: bad times %v..%v", tc.script, res.StartTime, res.EndTime)
			}
		}
	})

	t.Run("EnvIsExactlySpecEnv", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		spec := b.spec("env")
		spec.Env = append(spec.Env, "KILN_TEST=hello world")
		if res := start(t, spec).Wait(); res.ExitCode != 0 {
			t.Fatalf("env failed: %+v", res)
		}
		out, _ := os.ReadFile(b.stdout)
		got := strings.Fields(strings.ReplaceAll(string(out), " ", "_"))
		want := []string{"PATH=/usr/bin:/bin", "KILN_TEST=hello_world"}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("environment = %q, want %q", got, want)
		}
	})

	t.Run("DirCreatedAndRelativeProgram", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		spec := b.spec("./run.sh")
		spec.Dir = filepath.Join(b.dir, "a", "b", "wd")
		if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(spec.Dir, "run.sh"), []byte("#!/bin/sh\npwd\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if res := start(t, spec).Wait(); res.ExitCode != 0 {
			t.Fatalf("run.sh: %+v", res)
		}
		out, _ := os.ReadFile(b.stdout)
		if strings.TrimSpace(string(out)) != spec.Dir {
			t.Fatalf("pwd = %q, want %q", out, spec.Dir)
		}

		spec = b.spec("true")
		spec.Dir = filepath.Join(b.dir, "new", "wd")
		if res := start(t, spec).Wait(); res.ExitCode != 0 {
			t.Fatalf("true: %+v", res)
		}
		if fi, err := os.Stat(spec.Dir); err != nil || !fi.IsDir() {
			t.Fatalf("working directory not created: %v", err)
		}
	})

	t.Run("ProgramNotFound", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"kiln-no-such-program", "/nonexistent/prog", "./missing.sh"} {
			b := setup(t)
			_, err := taskrunner.Start(b.spec(name))
			if !errors.Is(err, taskrunner.ErrProgramNotFound) {
				t.Errorf("%s: err = %v, want ErrProgramNotFound", name, err)
			}
		}
		// PATH comes from the spec's environment, not the caller's.
		b := setup(t)
		spec := b.spec("sh", "-c", "true")
		spec.Env = []string{"PATH=" + b.dir}
		if _, err := taskrunner.Start(spec); !errors.Is(err, taskrunner.ErrProgramNotFound) {
			t.Errorf("sh with empty PATH dir: err = %v, want ErrProgramNotFound", err)
		}
	})

	t.Run("OutputIsLive", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := start(t, b.spec("/bin/sh", "-c", "echo out; echo err >&2; exec sleep 100"))
		eventually(t, "live output", func() bool {
			o, _ := os.ReadFile(b.stdout)
			e, _ := os.ReadFile(b.stderr)
			return string(o) == "out\n" && string(e) == "err\n"
		})
		select {
		case <-p.Done():
			t.Fatal("process exited early")
		default:
		}
	})

	t.Run("SameFileForStdoutAndStderr", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		spec := b.spec("/bin/sh", "-c", "echo a; echo b >&2; echo c")
		spec.Stderr = spec.Stdout
		start(t, spec).Wait()
		if out, _ := os.ReadFile(b.stdout); string(out) != "a\nb\nc\n" {
			t.Fatalf("combined output = %q", out)
		}
	})
}

func TestProcess_Kill(t *testing.T) {
	t.Parallel()

	t.Run("KillsGroup", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := start(t, b.spec("/bin/sh", "-c", "sleep 100 & echo $! > bg.pid; sleep 100"))
		bg := readPid(t, filepath.Join(b.dir, "wd", "bg.pid"))
		p.Kill()
		p.Kill()
		res := p.Wait()
		if !res.Killed || res.TimedOut || res.ExitCode != 137 {
			t.Fatalf("result = %+v, want Killed with exit code 137", res)
		}
		eventually(t, "background child gone", func() bool { return gone(bg) })
		eventually(t, "leader gone", func() bool { return gone(p.Pid()) })
	})

	t.Run("AfterExitIsNoop", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := start(t, b.spec("true"))
		res := p.Wait()
		p.Kill()
		p.Kill()
		if again := p.Wait(); again != res || res.Killed || res.ExitCode != 0 {
			t.Fatalf("result after Kill = %+v, before = %+v", again, res)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := start(t, b.spec("sleep", "100"))
		for range 8 {
			go p.Kill()
		}
		if res := p.Wait(); !res.Killed {
			t.Fatalf("result = %+v, want Killed", res)
		}
	})
}

func TestProcess_MaxWallClock(t *testing.T) {
	t.Parallel()

	t.Run("TimeoutKillsGrandchildren", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		spec := b.spec("/bin/sh", "-c", "sleep 100 & echo $! > bg.pid; /bin/sh -c 'sleep 100 & echo $! > gc.pid; sleep 100'")
		spec.MaxWallClock = 300 * time.Millisecond
		p := start(t, spec)
		bg := readPid(t, filepath.Join(spec.Dir, "bg.pid"))
		gc := readPid(t, filepath.Join(spec.Dir, "gc.pid"))
		res := p.Wait()
		if !res.TimedOut || res.Killed || res.ExitCode != 137 {
			t.Fatalf("result = %+v, want TimedOut with exit code 137", res)
		}
		if d := res.EndTime.Sub(res.StartTime); d < 300*time.Millisecond || d > 5*time.Second {
			t.Fatalf("ran for %v, want about 300ms", d)
		}
		eventually(t, "background child gone", func() bool { return gone(bg) })
		eventually(t, "grandchild gone", func() bool { return gone(gc) })
	})

	t.Run("NotReachedIsNotTimedOut", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		spec := b.spec("true")
		spec.MaxWallClock = time.Minute
		if res := start(t, spec).Wait(); res.TimedOut || res.ExitCode != 0 {
			t.Fatalf("result = %+v", res)
		}
	})
}
