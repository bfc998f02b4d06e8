package taskrunner

import (
	"encoding/binary"
	"syscall"
	"unsafe"
)

// Values of siginfo's si_code for SIGCHLD.
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// unreapedExitCode reads the exit status of the exited process pid without
// reaping it (waitid with WNOWAIT), as 128+N for a death by signal N.
func unreapedExitCode(pid int) (int, bool) {
	var siginfo [siginfoSz]byte
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, _P_PID, uintptr(pid),
			uintptr(unsafe.Pointer(&siginfo[0])), _WEXITED|_WNOWAIT, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return 0, false
		}
		break
	}
	// siginfo_t: si_signo, si_errno, si_code (int32 each), then the union,
	// aligned to a pointer; for SIGCHLD it starts with si_pid, si_uid,
	// si_status.
	union := 16
	if unsafe.Sizeof(uintptr(0)) == 4 {
		union = 12
	}
	code := int32(binary.NativeEndian.Uint32(siginfo[8:]))
	status := int(int32(binary.NativeEndian.Uint32(siginfo[union+8:])))
	switch code {
	case cldExited:
		return status, true
	case cldKilled, cldDumped:
		return 128 + status, true
	}
	return 0, false
}
