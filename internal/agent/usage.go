package agent

import (
	"github.com/kilnbatch/kiln/internal/agent/taskrunner"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// attemptStats turns a finished process's usage into the stats of its
// completed event. The wall clock is the process's own run time: preparing
// (downloads) and output uploads are not part of it, as in Azure, where
// the statistics cover the task's execution.
func attemptStats(res taskrunner.Result) *protocol.AttemptStats {
	u := res.Usage
	return &protocol.AttemptStats{
		WallClock:  protocol.Duration(res.EndTime.Sub(res.StartTime)),
		UserCPU:    protocol.Duration(u.UserCPU),
		KernelCPU:  protocol.Duration(u.KernelCPU),
		ReadOps:    u.ReadOps,
		WriteOps:   u.WriteOps,
		ReadBytes:  u.ReadBytes,
		WriteBytes: u.WriteBytes,
	}
}
