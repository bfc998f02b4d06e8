package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/taskrunner"
	"github.com/kilnbatch/kiln/internal/cmdline"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Failure categories, and the codes of failures that end an attempt before
// its process runs (failure.go has those of resource files, application
// packages and output files). All of them come with Phase preprocessing and
// without an exit code.
const (
	CategoryUserError   = "usererror"
	CategoryServerError = "servererror"

	// CodeCommandLineInvalid: empty or unparsable command line.
	CodeCommandLineInvalid = "CommandLineInvalid"
	// CodeCommandProgramNotFound: the program does not exist or is not on PATH.
	CodeCommandProgramNotFound = "CommandProgramNotFound"
	// CodeCommandLaunchFailed: the program exists but could not be executed
	// (not executable, bad interpreter, ...).
	CodeCommandLaunchFailed = "CommandLaunchFailed"
	// CodeTaskDirectoryInvalid: Assignment.Dir is not inside the node root.
	CodeTaskDirectoryInvalid = "TaskDirectoryInvalid"
	// CodeTaskDirectoryCreationFailed: the task directory could not be made.
	CodeTaskDirectoryCreationFailed = "TaskDirectoryCreationFailed"
)

// attempt is one accepted assignment.
type attempt struct {
	as     protocol.Assignment
	node   protocol.NodeConfig // as registered when the attempt was accepted
	nodeID string
	dir    string // absolute task directory; "" when Assignment.Dir is invalid
	ctx    context.Context
	cancel context.CancelFunc // kills the attempt
	done   chan struct{}      // closed after the completed event is queued
	// cleans are the clean orders in progress, when the attempt was
	// accepted, of directories overlapping its own: it starts after them.
	cleans []<-chan struct{}

	completedSeq int64 // Seq of the completed event; guarded by agent.mu
	fenced       bool  // stopped and forgotten by a fence (fence.go); guarded by agent.mu

	ident  *identity // who the process runs as (isolation.go)
	cgroup string    // the attempt's cgroup, "" without one
	over   bool      // isolation undone (agent.ended)
}

// accept starts an assignment unless its AttemptID was seen before in this
// agent's life: an attempt runs at most once however often it is delivered.
func (a *agent) accept(as protocol.Assignment) {
	if as.AttemptID == "" {
		a.log.Warn("ignoring assignment without attemptId", "task", as.TaskID)
		return
	}
	a.mu.Lock()
	if _, dup := a.seen[as.AttemptID]; dup {
		a.mu.Unlock()
		a.log.Debug("ignoring repeated assignment", "attempt", as.AttemptID)
		return
	}
	at := &attempt{as: as, node: a.node, nodeID: a.nodeID, done: make(chan struct{})}
	at.ctx, at.cancel = context.WithCancel(a.tasksCtx)
	if name, err := localDir(as.Dir); err == nil {
		at.dir = filepath.Join(a.rootDir, name)
	}
	for pc := range a.cleaning {
		if at.dir != "" && overlaps(pc.dir, at.dir) {
			at.cleans = append(at.cleans, pc.done)
		}
	}
	a.seen[as.AttemptID] = struct{}{}
	a.known[as.AttemptID] = at
	a.wg.Add(1)
	a.mu.Unlock()
	a.log.Debug("attempt accepted", "attempt", as.AttemptID, "kind", as.Kind, "job", as.JobID, "task", as.TaskID)
	go a.runAttempt(at)
}

// kill stops a known attempt; it still reports a completed event.
func (a *agent) kill(id string) {
	a.mu.Lock()
	at := a.known[id]
	a.mu.Unlock()
	if at == nil {
		a.log.Debug("kill order for unknown attempt", "attempt", id)
		return
	}
	a.log.Info("killing attempt", "attempt", id)
	at.cancel()
}

// pendingClean is a clean order in progress.
type pendingClean struct {
	dir  string        // absolute
	done chan struct{} // closed when the removal is over
}

// clean removes a directory under the node root once no running attempt
// uses it. It runs in the background (a large tree must not hold up the
// sync loop); paths outside the root, and the root itself, are refused.
// Attempts accepted later in that directory (a task of a deleted job
// created again) start only after the removal.
func (a *agent) clean(rel string) {
	name, err := localDir(rel)
	if err != nil {
		a.log.Warn("refusing clean order", "err", err)
		return
	}
	abs := filepath.Join(a.rootDir, name)
	var running []<-chan struct{}
	pc := &pendingClean{dir: abs, done: make(chan struct{})}
	a.mu.Lock()
	for _, at := range a.known {
		if at.dir != "" && overlaps(at.dir, abs) {
			running = append(running, at.done)
		}
	}
	if a.cleaning == nil {
		a.cleaning = map[*pendingClean]struct{}{}
	}
	a.cleaning[pc] = struct{}{}
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		defer func() {
			a.mu.Lock()
			delete(a.cleaning, pc)
			a.mu.Unlock()
			close(pc.done)
		}()
		for _, done := range running {
			<-done
		}
		if err := a.root.RemoveAll(name); err != nil {
			a.log.Warn("clean failed", "dir", rel, "err", err)
			return
		}
		a.log.Debug("cleaned", "dir", rel)
	}()
}

func (a *agent) runAttempt(at *attempt) {
	defer a.wg.Done()
	defer close(at.done)
	defer at.cancel()
	for _, c := range at.cleans {
		select {
		case <-c:
		case <-at.ctx.Done():
		}
	}
	var ev protocol.Event
	if at.as.Kind == protocol.KindSubtask {
		ev = a.executeSubtask(at)
	} else {
		ev = a.execute(at)
	}
	ev.Kind = protocol.EventCompleted
	a.emit(at, ev)
	a.log.Debug("attempt completed", "attempt", at.as.AttemptID, "exitCode", deref(ev.ExitCode),
		"failure", ev.Failure, "timedOut", ev.TimedOut, "killed", ev.Killed)
}

// prepare readies an attempt's directories, splits its command line and
// installs its application packages (the pool's were installed when the
// node registered; asking again waits for an install still in progress and
// retries one that failed). It returns the working directory and arguments,
// or the completed event of an attempt that cannot run.
func (a *agent) prepare(at *attempt) (wd string, args []string, fail *protocol.Event) {
	as := at.as
	end := func(ev protocol.Event) (string, []string, *protocol.Event) { return "", nil, &ev }
	if at.dir == "" {
		return end(failed(CategoryServerError, CodeTaskDirectoryInvalid,
			fmt.Sprintf("task directory %q is not inside the node root", as.Dir)))
	}
	wd = filepath.Join(at.dir, "wd")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return end(failed(CategoryServerError, CodeTaskDirectoryCreationFailed, err.Error()))
	}
	args, err := cmdline.Split(as.CommandLine)
	if err != nil {
		return end(failed(CategoryUserError, CodeCommandLineInvalid, err.Error()))
	}
	if len(args) == 0 {
		return end(failed(CategoryUserError, CodeCommandLineInvalid, "the command line is empty"))
	}
	if err := a.pkgs.installAll(at.ctx, slices.Concat(at.node.Packages, as.Packages)); err != nil {
		if at.ctx.Err() != nil {
			return end(protocol.Event{Killed: true})
		}
		return end(failedIn(protocol.PhasePreProcessing, err, CodeApplicationPackageError))
	}
	a.iso.openPackages(slices.Concat(at.node.Packages, as.Packages))
	return wd, args, nil
}

// execute prepares and runs the attempt and returns its completed event
// (without Kind and Seq). It emits the started event itself. The steps are
// Azure's: application packages, then resource files (the task is
// "preparing"), then the process, then its output files.
func (a *agent) execute(at *attempt) protocol.Event {
	as := at.as
	wd, args, fail := a.prepare(at)
	if fail != nil {
		return *fail
	}
	if err := downloadResourceFiles(at.ctx, a.client, wd, as.ResourceFiles); err != nil {
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

	env := taskEnv(at, a.cfg.PoolID, a.rootDir, wd)
	p, err := taskrunner.Start(at.isolated(taskrunner.Spec{
		Args:         args,
		Dir:          wd,
		Env:          env,
		Stdout:       filepath.Join(at.dir, "stdout.txt"),
		Stderr:       filepath.Join(at.dir, "stderr.txt"),
		MaxWallClock: time.Duration(as.MaxWallClock),
		// A multi-instance primary writes after its coordination command.
		Append: as.MultiInstance != nil,
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
	res := p.Wait()
	a.ended(at) // before the output files: nothing the task left runs on
	code := res.ExitCode
	ev := protocol.Event{
		Time:      res.EndTime,
		StartTime: res.StartTime.UTC(),
		ExitCode:  &code,
		TimedOut:  res.TimedOut,
		Killed:    res.Killed,
		Stats:     attemptStats(res),
	}
	// Output files follow every end but a kill: a task that failed or
	// timed out uploads what its conditions ask for (its logs, typically).
	if res.Killed || len(as.OutputFiles) == 0 {
		return ev
	}
	err = uploadOutputFiles(at.ctx, a.client, at.dir, env, as.OutputFiles, code)
	ev.Time = time.Now()
	switch {
	case at.ctx.Err() != nil:
		ev.Killed = true // killed while uploading
	case err != nil:
		// The exit code stays: it is what the process did; the failure
		// says the task still failed, in the fileupload phase.
		ev.Failure = failedIn(protocol.PhaseFileUpload, err, CodeFileUploadMiscError).Failure
	}
	return ev
}

// failed is the completed event of an attempt that failed before its
// process ran.
func failed(category, code, msg string) protocol.Event {
	return protocol.Event{Failure: &protocol.FailureInfo{
		Category: category, Code: code, Message: msg, Phase: protocol.PhasePreProcessing}}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
