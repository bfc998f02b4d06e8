//go:build !linux

package agent

import (
	"os/exec"
	"syscall"
)

// allCaps: there are no ambient capabilities here.
func allCaps() []uintptr { return nil }

// killGroupOf kills process group pgid (without /proc, the uid cannot be
// checked).
func killGroupOf(pgid, uid int) bool {
	return syscall.Kill(-pgid, syscall.SIGKILL) == nil
}

func execOutput(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).Output()
}
