package taskrunner_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive reports whether the process whose pid is in file exists.
func alive(t *testing.T, file string) bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return syscall.Kill(pid, 0) == nil
}

// TestProcess_Linger: a lingering command's exit is reported while what it
// left running in the background keeps running, and Kill ends that too.
func TestProcess_Linger(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("lingering holds the process group on Linux only")
	}
	t.Parallel()
	t.Run("ExitZeroKeepsBackground", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		pidFile := filepath.Join(b.dir, "daemon.pid")
		spec := b.spec("/bin/sh", "-c", "sleep 60 & echo $! > "+pidFile+"; echo coordinated")
		spec.Linger = true
		p := start(t, spec)
		select {
		case <-p.LeaderExited():
		case <-time.After(10 * time.Second):
			t.Fatal("leader exit not reported")
		}
		if r := p.LeaderResult(); r.ExitCode != 0 || r.Killed || r.TimedOut {
			t.Fatalf("leader result %+v", r)
		}
		select {
		case <-p.Done():
			t.Fatal("a lingering process ended before Kill")
		case <-time.After(100 * time.Millisecond):
		}
		if !alive(t, pidFile) {
			t.Fatal("the background process died with the leader")
		}
		p.Kill()
		r := p.Wait()
		if !r.Killed || r.ExitCode != 0 {
			t.Fatalf("final result %+v: want killed with the leader's exit code 0", r)
		}
		eventually(t, "background process killed", func() bool { return !alive(t, pidFile) })
	})
	t.Run("ExitCodeAndSignal", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		spec := b.spec("/bin/sh", "-c", "exit 3")
		spec.Linger = true
		p := start(t, spec)
		if r := p.LeaderResult(); r.ExitCode != 3 {
			t.Fatalf("leader exit code %d, want 3", r.ExitCode)
		}
		p.Kill()
		if r := p.Wait(); r.ExitCode != 3 {
			t.Fatalf("final exit code %d, want 3", r.ExitCode)
		}

		spec = b.spec("/bin/sh", "-c", "kill -TERM $$")
		spec.Linger = true
		p = start(t, spec)
		if r := p.LeaderResult(); r.ExitCode != 128+int(syscall.SIGTERM) {
			t.Fatalf("leader killed by SIGTERM: exit code %d", r.ExitCode)
		}
	})
	t.Run("KillBeforeExit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		spec := b.spec("sleep", "60")
		spec.Linger = true
		p := start(t, spec)
		p.Kill()
		if r := p.LeaderResult(); !r.Killed || r.ExitCode != 137 {
			t.Fatalf("leader result %+v", r)
		}
		if r := p.Wait(); !r.Killed {
			t.Fatalf("final result %+v", r)
		}
	})
	t.Run("WallClockStopsAtLeaderExit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		pidFile := filepath.Join(b.dir, "daemon.pid")
		spec := b.spec("/bin/sh", "-c", "sleep 60 & echo $! > "+pidFile)
		spec.Linger = true
		spec.MaxWallClock = 200 * time.Millisecond
		p := start(t, spec)
		<-p.LeaderExited()
		time.Sleep(400 * time.Millisecond)
		if !alive(t, pidFile) {
			t.Fatal("the wall clock limit killed what the leader left running")
		}
	})
}

// TestProcess_Append: Append keeps what the output files held.
func TestProcess_Append(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := os.WriteFile(b.stdout, []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := b.spec("/bin/sh", "-c", "echo after")
	spec.Append = true
	p := start(t, spec)
	p.Wait()
	got, _ := os.ReadFile(b.stdout)
	if string(got) != "before\nafter\n" {
		t.Fatalf("stdout %q", got)
	}
}
