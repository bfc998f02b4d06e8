//go:build unix && !linux

package taskrunner

// waitExited is a no-op where waitid(WNOWAIT) is not used: Kill then has a
// tiny window between the reap and the exited mark in which the group id
// could in theory be reused.
func waitExited(pid int) {}
