package taskrunner

import (
	"os"
	"syscall"
	"time"
)

// Usage is what one task process consumed, measured once it has exited.
//
// CPU times come from the rusage the kernel returns when the process is
// reaped (os.ProcessState.SysUsage): the process itself plus every
// descendant it waited for, which is what getrusage(RUSAGE_CHILDREN) would
// show to the task's parent. Descendants that were still running when the
// process exited (daemons, or children of a killed leader) are not counted:
// nobody waited for them.
//
// I/O comes from the Linux per-process I/O accounting (/proc/<pid>/io) of
// the same process, read after it has exited but before it is reaped. At
// that moment the counters are final and, like rusage, include every
// descendant it waited for (the kernel folds a reaped child's counters into
// its parent's), so the figures are exact rather than a sample taken
// before the end. ReadBytes and WriteBytes are the storage layer's figures
// (read_bytes, write_bytes: bytes fetched from or sent towards the disk,
// page-cache hits excluded); ReadOps and WriteOps are the read and write
// system calls made (syscr, syscw), the closest count of I/O operations
// Linux keeps per process, which includes reads and writes of pipes and
// sockets. Where /proc is missing (other systems) the I/O figures are zero.
type Usage struct {
	UserCPU, KernelCPU    time.Duration
	ReadOps, WriteOps     int64
	ReadBytes, WriteBytes int64
}

// cpuUsage reads the CPU times from a reaped process's rusage.
func cpuUsage(ps *os.ProcessState, u *Usage) {
	if ps == nil {
		return
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return
	}
	u.UserCPU = time.Duration(ru.Utime.Nano())
	u.KernelCPU = time.Duration(ru.Stime.Nano())
}
