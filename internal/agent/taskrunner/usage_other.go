//go:build unix && !linux

package taskrunner

// ioUsage is a no-op where there is no /proc/<pid>/io: I/O is reported as
// zero.
func ioUsage(pid int, u *Usage) {}
