package service

import (
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// validateMaxParallelTasks applies Azure's rule: "The value of
// maxParallelTasks must be -1 or greater than 0 if specified"; -1 (the
// default) means no limit. A job at its limit starts no task until one of
// its running tasks ends; lowering the limit below the running count stops
// nothing.
func validateMaxParallelTasks(v *int32) error {
	if v != nil && (*v == 0 || *v < -1) {
		return batch.InvalidProperty("maxParallelTasks", itoa(*v), "The value must be -1 or greater than 0.")
	}
	return nil
}

// retryable reports whether a failed attempt may be retried under
// maxTaskRetryCount. Azure: "Task application failures (non-zero exit code)
// are retried, pre-processing errors (the Task could not be run) and file
// upload errors are not retried." The agent marks the latter with a phase.
func retryable(ev protocol.Event) bool {
	return ev.Failure == nil || ev.Failure.Phase == ""
}
