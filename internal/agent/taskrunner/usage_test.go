package taskrunner_test

import (
	"os"
	"testing"
	"time"
)

// TestProcess_Usage: CPU and I/O are measured after the process exits and
// include the descendants it waited for.
func TestProcess_Usage(t *testing.T) {
	t.Parallel()

	t.Run("CountsWaitedForChildren", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// The leader only waits: the CPU burn and the writes happen in
		// children it reaps. dd writes 4 MiB in 64 writes of 64 KiB and
		// syncs them to the disk.
		p := start(t, b.spec("/bin/sh", "-c",
			"/bin/sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done'; "+
				"dd if=/dev/zero of=out.bin bs=64k count=64 conv=fsync 2>/dev/null; "+
				"dd if=out.bin of=/dev/null bs=64k 2>/dev/null"))
		res := p.Wait()
		if res.ExitCode != 0 {
			t.Fatalf("exit code %d", res.ExitCode)
		}
		u := res.Usage
		if u.UserCPU+u.KernelCPU < 10*time.Millisecond {
			t.Fatalf("CPU user %v kernel %v: the children's busy loop is missing", u.UserCPU, u.KernelCPU)
		}
		if u.WriteBytes < 4<<20 {
			t.Fatalf("write bytes %d, want at least the 4 MiB dd wrote", u.WriteBytes)
		}
		if u.WriteOps < 64 || u.ReadOps < 64 {
			t.Fatalf("write ops %d read ops %d, want at least dd's 64 each", u.WriteOps, u.ReadOps)
		}
	})

	t.Run("IdleProcessUsesLittle", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := start(t, b.spec("sleep", "0.2")).Wait()
		u := res.Usage
		if u.UserCPU+u.KernelCPU > 150*time.Millisecond || u.WriteBytes != 0 {
			t.Fatalf("usage of sleep: %+v", u)
		}
	})

	t.Run("KilledProcessStillMeasured", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := start(t, b.spec("/bin/sh", "-c", "dd if=/dev/zero of=out.bin bs=64k count=16 conv=fsync 2>/dev/null; touch done; exec sleep 100"))
		eventually(t, "writes done", func() bool { return exists(b.dir + "/wd/done") })
		p.Kill()
		res := p.Wait()
		if !res.Killed || res.Usage.WriteBytes < 1<<20 {
			t.Fatalf("killed result %+v", res)
		}
	})
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
