//go:build !linux

package taskrunner

// unreapedExitCode is not available here: lingering processes are reaped at
// once (see linger.go).
func unreapedExitCode(pid int) (int, bool) { return 0, false }
