package agent

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/taskrunner"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Multi-instance tasks (Azure's "Use multi-instance tasks to run MPI
// applications"): the server places one subtask per node, each a
// KindSubtask attempt that downloads the common resource files into the
// task directory (AZ_BATCH_TASK_SHARED_DIR) and runs the coordination
// command. Once every subtask's coordination command has exited with 0, the
// server sends the master node the primary's application command, a
// KindTask attempt with MultiInstance set that runs in the same task
// directory. When the primary ends, the server kills the subtasks, and with
// them whatever their coordination commands left running (a daemon such as
// smpd, an NFS export): that is what Linger is for.

// executeSubtask runs a KindSubtask attempt and returns its completed event.
// It emits the started event, and the coordinated event when the
// coordination command exits with code 0; it then holds the command's
// process group until the attempt is killed.
func (a *agent) executeSubtask(at *attempt) protocol.Event {
	as := at.as
	wd, args, fail := a.prepare(at)
	if fail != nil {
		return *fail
	}
	// Common resource files go to the task directory, one above the
	// working directory, where every instance finds them under the same
	// path (AZ_BATCH_TASK_SHARED_DIR).
	if err := downloadResourceFiles(at.ctx, a.client, at.dir, as.ResourceFiles); err != nil {
		if at.ctx.Err() != nil {
			return protocol.Event{Killed: true}
		}
		return failedIn(protocol.PhasePreProcessing, err, CodeBlobDownloadMiscError)
	}
	if at.ctx.Err() != nil {
		return protocol.Event{Killed: true}
	}
	if fail := a.isolate(at); fail != nil {
		return *fail
	}
	defer a.ended(at)
	p, err := taskrunner.Start(at.isolated(taskrunner.Spec{
		Args:         args,
		Dir:          wd,
		Env:          taskEnv(at, a.cfg.PoolID, a.rootDir, wd),
		Stdout:       filepath.Join(at.dir, "stdout.txt"),
		Stderr:       filepath.Join(at.dir, "stderr.txt"),
		MaxWallClock: time.Duration(as.MaxWallClock),
		Linger:       true,
	}))
	switch {
	case errors.Is(err, taskrunner.ErrProgramNotFound):
		return failed(CategoryUserError, CodeCommandProgramNotFound, err.Error())
	case err != nil:
		return failed(CategoryUserError, CodeCommandLaunchFailed, err.Error())
	}
	a.started(at, p)
	a.emit(at, protocol.Event{Kind: protocol.EventStarted, Time: p.StartTime()})
	stop := context.AfterFunc(at.ctx, func() { a.killTree(at, p) })
	defer stop()
	<-p.LeaderExited()
	lr := p.LeaderResult()
	code := lr.ExitCode
	if code == 0 && !lr.Killed && !lr.TimedOut {
		a.emit(at, protocol.Event{Kind: protocol.EventCoordinated, Time: lr.EndTime, ExitCode: &code})
		<-at.ctx.Done() // the primary ended, or the task was terminated
	}
	a.killTree(at, p) // what the coordination command left running ends with it
	res := p.Wait()
	return protocol.Event{
		Time:      time.Now(),
		StartTime: res.StartTime.UTC(),
		ExitCode:  &code,
		TimedOut:  lr.TimedOut,
		Killed:    lr.Killed || at.ctx.Err() != nil,
		Stats:     attemptStats(res),
	}
}

// multiInstanceEnv sets the variables of Azure's "Azure Batch runtime
// environment variables" that multi-instance primaries and subtasks get.
// Kiln has no CCP_NODES (the cores per node of MS-MPI on Windows).
func multiInstanceEnv(at *attempt, set func(k, v string)) {
	mi := at.as.MultiInstance
	if mi == nil {
		return
	}
	set("AZ_BATCH_HOST_LIST", strings.Join(mi.Hosts, ","))
	set("AZ_BATCH_NODE_LIST", strings.Join(mi.Hosts, ";"))
	set("AZ_BATCH_MASTER_NODE", mi.Master)
	set("AZ_BATCH_IS_CURRENT_NODE_MASTER", strconv.FormatBool(mi.SubtaskID == 0))
	set("AZ_BATCH_TASK_SHARED_DIR", at.dir)
}

// jobPrepEnv sets AZ_BATCH_JOB_PREP_DIR and AZ_BATCH_JOB_PREP_WORKING_DIR
// for the attempts of a job with a preparation task.
func jobPrepEnv(at *attempt, rootDir string, set func(k, v string)) {
	rel := at.as.JobPrepDir
	if rel == "" || at.as.Kind == protocol.KindJobPreparation || at.as.Kind == protocol.KindStartTask {
		return
	}
	name, err := localDir(rel)
	if err != nil {
		return
	}
	dir := filepath.Join(rootDir, name)
	set("AZ_BATCH_JOB_PREP_DIR", dir)
	set("AZ_BATCH_JOB_PREP_WORKING_DIR", filepath.Join(dir, "wd"))
}
