package taskrunner

import (
	"fmt"
	"syscall"
)

// sysProcAttr puts the process in its own process group and, as spec says,
// under another user, with ambient capabilities, in a cgroup.
func sysProcAttr(spec Spec) (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{Setpgid: true, Credential: spec.Credential, AmbientCaps: spec.AmbientCaps}
	if spec.Cgroup != "" {
		fd, err := syscall.Open(spec.Cgroup, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("taskrunner: open cgroup: %w", err)
		}
		attr.UseCgroupFD, attr.CgroupFD = true, fd
	}
	return attr, nil
}

// closeCgroup closes the cgroup descriptor sysProcAttr opened.
func closeCgroup(attr *syscall.SysProcAttr) {
	if attr != nil && attr.UseCgroupFD {
		syscall.Close(attr.CgroupFD)
	}
}
