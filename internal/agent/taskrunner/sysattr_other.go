//go:build !linux

package taskrunner

import "syscall"

// sysProcAttr puts the process in its own process group, as spec.Credential
// says; there are no cgroups or ambient capabilities here.
func sysProcAttr(spec Spec) (*syscall.SysProcAttr, error) {
	return &syscall.SysProcAttr{Setpgid: true, Credential: spec.Credential}, nil
}

func closeCgroup(*syscall.SysProcAttr) {}
