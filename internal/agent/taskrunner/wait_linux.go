package taskrunner

import (
	"syscall"
	"unsafe"
)

const (
	_P_PID    = 1
	_WNOWAIT  = 0x01000000
	_WEXITED  = 0x4
	siginfoSz = 128
)

// waitExited blocks until the process pid has exited, without reaping it
// (waitid with WNOWAIT), as os.Process does internally.
func waitExited(pid int) {
	var siginfo [siginfoSz / 8]uint64
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, _P_PID, uintptr(pid),
			uintptr(unsafe.Pointer(&siginfo[0])), _WEXITED|_WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return // on any other error cmd.Wait reports the outcome
		}
	}
}
