package service

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestDependencies_Chain: a task runs only after its parent completed
// successfully; a chain runs one task at a time, and dependents count as
// active while they wait.
func TestDependencies_Chain(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 8)
	b.addJob("job", nil)
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("a")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("b"), DependsOn: dependsOn([]string{"a"})})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("c"), DependsOn: dependsOn([]string{"B", "a"})}) // ids are case-insensitive
	b.wantAssigned("a")
	if c := b.counts("job"); *c.Active != 2 || *c.Running != 1 {
		t.Fatalf("counts %+v, want 2 active (waiting) and 1 running", c)
	}
	b.complete(exited(0), "a")
	b.wantAssigned("b")
	b.complete(exited(0), "b")
	b.wantAssigned("c")
	b.complete(exited(0), "c")
	if c := b.counts("job"); *c.Succeeded != 3 || *c.Active != 0 {
		t.Fatalf("counts %+v, want 3 succeeded", c)
	}
	// dependsOn comes back as it was given.
	got := b.task("job", "c")
	if got.DependsOn == nil || fmt.Sprint(got.DependsOn.TaskIDs) != "[B a]" {
		t.Fatalf("dependsOn %+v", got.DependsOn)
	}
}

// TestDependencies_Ranges: a range covers the tasks whose ids are integers
// in it, leading zeros ignored ("007" is 7, and the first task of a value
// to be satisfied satisfies it); other ids are not in any range.
func TestDependencies_Ranges(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 16)
	b.addJob("job", nil)
	var tasks []azbatch.CreateTaskContent
	for _, id := range []string{"1", "2", "3", "5", "007", "4flamingoes"} {
		tasks = append(tasks, azbatch.CreateTaskContent{ID: ptr(id), CommandLine: ptr("true")})
	}
	tasks = append(tasks,
		azbatch.CreateTaskContent{ID: ptr("low"), CommandLine: ptr("true"), DependsOn: dependsOn(nil, [2]int32{1, 3})},
		azbatch.CreateTaskContent{ID: ptr("all"), CommandLine: ptr("true"), DependsOn: dependsOn([]string{"4flamingoes"}, [2]int32{1, 3}, [2]int32{5, 7})},
		azbatch.CreateTaskContent{ID: ptr("six"), CommandLine: ptr("true"), DependsOn: dependsOn(nil, [2]int32{6, 6})},
	)
	b.addTasks("job", tasks)
	b.wantAssigned("1", "2", "3", "4flamingoes", "5", "007")
	b.complete(exited(0), "1", "2")
	b.wantAssigned("3", "4flamingoes", "5", "007")
	b.complete(exited(0), "3", "4flamingoes", "5", "007")
	b.wantAssigned("low")
	// "all" still waits for task 6, which does not exist yet.
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("006")})
	b.wantAssigned("low", "006")
	b.complete(exited(0), "006")
	b.wantAssigned("low", "all", "six")
	// "6" now exists too; its value is satisfied already.
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("late"), DependsOn: dependsOn(nil, [2]int32{6, 7})})
	b.wantAssigned("low", "all", "six", "late")
}

// TestDependencies_ParentsAddedLaterOrDone: a task may name parents that do
// not exist yet (it waits for them) or that completed already (they count
// as satisfied at once).
func TestDependencies_ParentsAddedLaterOrDone(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 8)
	b.addJob("job", nil)
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("early"), DependsOn: dependsOn([]string{"p"}, [2]int32{10, 11})})
	b.wantAssigned()
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("p")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("10")})
	b.run("p", "10")
	b.wantAssigned()
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("11")})
	b.run("11")
	b.wantAssigned("early")
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("after"), DependsOn: dependsOn([]string{"P", "early"}, [2]int32{10, 11})})
	b.wantAssigned("early")
	b.complete(exited(0), "early")
	b.wantAssigned("after")
}

// TestDependencies_Blocked: a parent that fails blocks its dependents for
// ever (dependencyAction block is the default for any failure); they stay
// active, so onAllTasksComplete terminatejob does not end the job.
func TestDependencies_Blocked(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 8)
	b.addJob("job", func(c *azbatch.CreateJobContent) {
		c.OnAllTasksComplete = ptr(azbatch.OnAllTasksCompleteTerminateJob)
	})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("1")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("2")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("byid"), DependsOn: dependsOn([]string{"1"})})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("byrange"), DependsOn: dependsOn(nil, [2]int32{1, 2})})
	b.assigned()
	b.complete(exited(3), "1")
	b.complete(exited(0), "2")
	b.wantAssigned()
	for _, id := range []string{"byid", "byrange"} {
		if st := *b.task("job", id).State; st != azbatch.TaskStateActive {
			t.Fatalf("task %s is %s, want active (blocked)", id, st)
		}
	}
	if st := *b.job("job").State; st != azbatch.JobStateActive {
		t.Fatalf("job is %s with blocked tasks, want active", st)
	}
	// Once the blocked tasks are terminated, every task is complete.
	for _, id := range []string{"byid", "byrange"} {
		if _, err := b.s.TaskTerminate(context.Background(), depsAccount, "job", id, Conditions{}); err != nil {
			t.Fatal(err)
		}
	}
	if j := b.job("job"); *j.State != azbatch.JobStateCompleted || *j.ExecutionInfo.TerminationReason != "AllTasksComplete" {
		t.Fatalf("job %s %v, want completed AllTasksComplete", *j.State, j.ExecutionInfo.TerminationReason)
	}
}

// TestDependencies_SatisfyOnFailure: exit conditions can let a failed
// parent satisfy its dependents, per exit code, range, pre-processing
// error, file upload error or default.
func TestDependencies_SatisfyOnFailure(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 16)
	b.addJob("job", nil)
	satisfy := &azbatch.ExitOptions{DependencyAction: ptr(azbatch.DependencyActionSatisfy)}
	block := &azbatch.ExitOptions{DependencyAction: ptr(azbatch.DependencyActionBlock)}
	parents := map[string]struct {
		ec   *azbatch.ExitConditions
		end  completion
		runs bool // whether the dependent becomes eligible
	}{
		"code":        {&azbatch.ExitConditions{ExitCodes: []azbatch.ExitCodeMapping{{Code: ptr(int32(3)), ExitOptions: satisfy}}}, exited(3), true},
		"range":       {&azbatch.ExitConditions{ExitCodeRanges: []azbatch.ExitCodeRangeMapping{{Start: ptr(int32(10)), End: ptr(int32(20)), ExitOptions: satisfy}}}, exited(15), true},
		"outofrange":  {&azbatch.ExitConditions{ExitCodeRanges: []azbatch.ExitCodeRangeMapping{{Start: ptr(int32(10)), End: ptr(int32(20)), ExitOptions: satisfy}}}, exited(21), false},
		"default":     {&azbatch.ExitConditions{Default: satisfy}, exited(1), true},
		"preproc":     {&azbatch.ExitConditions{PreProcessingError: satisfy, Default: block}, preprocessingFailed("BlobNotFound"), true},
		"preprocdef":  {&azbatch.ExitConditions{Default: satisfy}, preprocessingFailed("BlobNotFound"), true},
		"upload":      {&azbatch.ExitConditions{FileUploadError: satisfy}, uploadFailed(0), true},
		"uploadcode":  {&azbatch.ExitConditions{FileUploadError: satisfy, ExitCodes: []azbatch.ExitCodeMapping{{Code: ptr(int32(0)), ExitOptions: block}}}, uploadFailed(0), false},
		"successblk":  {&azbatch.ExitConditions{ExitCodes: []azbatch.ExitCodeMapping{{Code: ptr(int32(0)), ExitOptions: block}}}, exited(0), false},
		"nodefault":   {&azbatch.ExitConditions{PreProcessingError: satisfy}, exited(2), false},
		"uploadblock": {nil, uploadFailed(0), false},
	}
	for id, p := range parents {
		b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr(id), ExitConditions: p.ec})
		b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("after-" + id), DependsOn: dependsOn([]string{id})})
	}
	b.assigned()
	for id, p := range parents {
		b.complete(p.end, id)
	}
	running := map[string]bool{}
	for _, id := range b.assigned() {
		running[id] = true
	}
	for id, p := range parents {
		if running["after-"+id] != p.runs {
			t.Errorf("dependent of %s eligible: %v, want %v", id, running["after-"+id], p.runs)
		}
	}
	// Exit conditions come back in lower case as given.
	if ec := b.task("job", "code").ExitConditions; ec == nil || *ec.ExitCodes[0].ExitOptions.DependencyAction != azbatch.DependencyActionSatisfy {
		t.Fatalf("exitConditions %+v", ec)
	}
}

// TestDependencies_Validation: Azure's errors for dependsOn.
func TestDependencies_Validation(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 1)
	b.addJob("plain", func(c *azbatch.CreateJobContent) { c.UsesTaskDependencies = nil })
	b.addJob("deps", nil)
	if j := b.job("deps"); !*j.UsesTaskDependencies {
		t.Fatalf("usesTaskDependencies %v", *j.UsesTaskDependencies)
	}
	err := b.addTask("plain", azbatch.CreateTaskContent{ID: ptr("t"), DependsOn: dependsOn([]string{"a"})})
	wantError(t, err, "TaskDependenciesNotSpecifiedOnJob", "")
	err = b.addTask("plain", azbatch.CreateTaskContent{ID: ptr("t"), ExitConditions: &azbatch.ExitConditions{Default: &azbatch.ExitOptions{DependencyAction: ptr(azbatch.DependencyActionSatisfy)}}})
	wantError(t, err, "InvalidPropertyValue", "exitConditions.default.dependencyAction")

	long := make([]string, 0, 1000)
	for i := 0; len(strings.Join(long, "")) <= MaxDependencyIDsLength; i++ {
		long = append(long, fmt.Sprintf("parent-task-%052d", i))
	}
	err = b.addTask("deps", azbatch.CreateTaskContent{ID: ptr("t"), DependsOn: dependsOn(long)})
	wantError(t, err, "TaskDependencyListTooLong", "")
	wantOK := b.addTask("deps", azbatch.CreateTaskContent{ID: ptr("fits"), DependsOn: dependsOn(long[:len(long)-1])})
	if wantOK != nil {
		t.Fatalf("%d characters of task ids refused: %v", len(strings.Join(long[:len(long)-1], "")), wantOK)
	}
	var ranges [][2]int32
	for i := int32(0); i < 6000; i++ {
		ranges = append(ranges, [2]int32{i * 1000, i*1000 + 1})
	}
	err = b.addTask("deps", azbatch.CreateTaskContent{ID: ptr("t"), DependsOn: dependsOn(nil, ranges...)})
	wantError(t, err, "TaskDependencyRangesTooLong", "")

	for _, c := range []struct {
		dep  *azbatch.TaskDependencies
		code string
		prop string
	}{
		{dependsOn(nil, [2]int32{5, 4}), "InvalidPropertyValue", "dependsOn.taskIdRanges[0].start"},
		{dependsOn(nil, [2]int32{1, 2}, [2]int32{-1, 4}), "InvalidPropertyValue", "dependsOn.taskIdRanges[1].start"},
		{&azbatch.TaskDependencies{TaskIDRanges: []azbatch.TaskIDRange{{Start: ptr(int32(1))}}}, "MissingRequiredProperty", "dependsOn.taskIdRanges[0].end"},
		{dependsOn([]string{"ok", "not ok"}), "InvalidPropertyValue", "dependsOn.taskIds[1]"},
		{dependsOn([]string{""}), "MissingRequiredProperty", "dependsOn.taskIds[0]"},
	} {
		err := b.addTask("deps", azbatch.CreateTaskContent{ID: ptr("t"), DependsOn: c.dep})
		wantError(t, err, c.code, c.prop)
	}
	// In a collection, each task gets its own result.
	res, err := b.s.TaskAddCollection(context.Background(), depsAccount, "plain", []azbatch.CreateTaskContent{
		{ID: ptr("x"), CommandLine: ptr("true")},
		{ID: ptr("y"), CommandLine: ptr("true"), DependsOn: dependsOn([]string{"x"})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if *res[0].Status != azbatch.TaskAddStatusSuccess || *res[1].Status != azbatch.TaskAddStatusClientError || *res[1].Error.Code != "TaskDependenciesNotSpecifiedOnJob" {
		t.Fatalf("results %+v %+v", res[0], res[1].Error)
	}
}

// TestDependencies_Restart: the index is rebuilt from the store. Parents
// completed before the restart count (satisfied or blocked as their exit
// conditions say), parents that complete after it release their dependents.
func TestDependencies_Restart(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 16)
	b.addJob("job", nil)
	var tasks []azbatch.CreateTaskContent
	for i := 1; i <= 6; i++ {
		tasks = append(tasks, azbatch.CreateTaskContent{ID: ptr(strconv.Itoa(i)), CommandLine: ptr("true")})
	}
	tasks = append(tasks,
		azbatch.CreateTaskContent{ID: ptr("soft"), CommandLine: ptr("true"), ExitConditions: &azbatch.ExitConditions{Default: &azbatch.ExitOptions{DependencyAction: ptr(azbatch.DependencyActionSatisfy)}}},
		azbatch.CreateTaskContent{ID: ptr("hard"), CommandLine: ptr("true")},
		azbatch.CreateTaskContent{ID: ptr("fanin"), CommandLine: ptr("true"), DependsOn: dependsOn([]string{"soft"}, [2]int32{1, 6})},
		azbatch.CreateTaskContent{ID: ptr("blocked"), CommandLine: ptr("true"), DependsOn: dependsOn([]string{"hard"}, [2]int32{1, 2})},
		azbatch.CreateTaskContent{ID: ptr("waits"), CommandLine: ptr("true"), DependsOn: dependsOn([]string{"future"})},
	)
	b.addTasks("job", tasks)
	b.assigned()
	b.complete(exited(0), "1", "2", "3")
	b.complete(exited(9), "soft", "hard")
	// 4 still runs, 5 and 6 complete after the restart.
	b.restart()
	b.wantAssigned("4", "5", "6")
	b.complete(exited(0), "4", "5")
	b.wantAssigned("6")
	b.restart()
	b.complete(exited(0), "6")
	b.wantAssigned("fanin")
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("future")})
	b.wantAssigned("fanin", "future")
	b.complete(exited(0), "fanin", "future")
	b.wantAssigned("waits")
	if st := *b.task("job", "blocked").State; st != azbatch.TaskStateActive {
		t.Fatalf("blocked is %s", st)
	}
	// A task added after the restart sees satisfied and blocked parents.
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("late-ok"), DependsOn: dependsOn([]string{"soft", "fanin"}, [2]int32{1, 6})})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("late-blocked"), DependsOn: dependsOn([]string{"hard"})})
	b.wantAssigned("waits", "late-ok")
}

// TestDependencies_DeleteTerminateReactivate: a waiting task can be
// deleted (its parents completing later ignore it) or terminated; a
// terminated dependent that is reactivated waits for its parents again.
// Deleting a satisfied parent keeps it satisfied, as on Azure.
func TestDependencies_DeleteTerminateReactivate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newDepsBundle(t, 8)
	b.addJob("job", nil)
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("p")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("gone"), DependsOn: dependsOn([]string{"p"})})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("again"), DependsOn: dependsOn([]string{"p"})})
	b.wantAssigned("p")
	if err := b.s.TaskDelete(ctx, depsAccount, "job", "gone", Conditions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.TaskTerminate(ctx, depsAccount, "job", "again", Conditions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.TaskReactivate(ctx, depsAccount, "job", "again", Conditions{}); err != nil {
		t.Fatal(err)
	}
	b.wantAssigned("p")
	// A task of the deleted one's id is a new task with its own parents.
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("gone")})
	b.wantAssigned("p", "gone")
	b.complete(exited(0), "p", "gone")
	b.wantAssigned("again")
	if err := b.s.TaskDelete(ctx, depsAccount, "job", "p", Conditions{}); err != nil {
		t.Fatal(err)
	}
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("child"), DependsOn: dependsOn([]string{"p"})})
	b.wantAssigned("again", "child")
}

// TestDependencies_FanOutFanIn: one root, many dependents of it, one task
// depending on all of them through a range, through the whole path.
func TestDependencies_FanOutFanIn(t *testing.T) {
	t.Parallel()
	const n = 2000
	b := newDepsBundle(t, 256)
	b.addJob("job", func(c *azbatch.CreateJobContent) {
		c.OnAllTasksComplete = ptr(azbatch.OnAllTasksCompleteTerminateJob)
	})
	tasks := []azbatch.CreateTaskContent{{ID: ptr("0"), CommandLine: ptr("true")}}
	for i := 1; i <= n; i++ {
		tasks = append(tasks, azbatch.CreateTaskContent{ID: ptr(strconv.Itoa(i)), CommandLine: ptr("true"), DependsOn: dependsOn([]string{"0"})})
	}
	tasks = append(tasks, azbatch.CreateTaskContent{ID: ptr("final"), CommandLine: ptr("true"), DependsOn: dependsOn(nil, [2]int32{1, n})})
	b.addTasks("job", tasks)
	b.wantAssigned("0")
	b.complete(exited(0), "0")
	done := 0
	for done < n {
		ids := b.assigned()
		if len(ids) == 0 {
			t.Fatalf("nothing assigned after %d completions", done)
		}
		for _, id := range ids {
			if id == "final" {
				t.Fatalf("final ran after %d of %d parents", done, n)
			}
		}
		b.complete(exited(0), ids...)
		done += len(ids)
	}
	b.wantAssigned("final")
	b.complete(exited(0), "final")
	if j := b.job("job"); *j.State != azbatch.JobStateCompleted {
		t.Fatalf("job %s", *j.State)
	}
	if c := b.counts("job"); *c.Succeeded != n+2 {
		t.Fatalf("counts %+v", c)
	}
}

// TestBitsetCount compares bitset.count with counting one by one.
func TestBitsetCount(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	bs := bitset{}
	in := map[uint32]bool{}
	for range 3000 {
		v := uint32(r.IntN(40000))
		if r.IntN(10) == 0 {
			v = uint32(r.Int32())
		}
		if bs.add(v) == in[v] {
			t.Fatalf("add(%d) after %v", v, in[v])
		}
		in[v] = true
	}
	for range 500 {
		lo := uint32(r.IntN(40000))
		hi := lo + uint32(r.IntN(20000))
		if r.IntN(10) == 0 {
			hi = 1<<31 - 1
		}
		want := int64(0)
		for v := range in {
			if v >= lo && v <= hi {
				want++
			}
		}
		if got := bs.count(lo, hi); got != want {
			t.Fatalf("count(%d, %d) = %d, want %d", lo, hi, got, want)
		}
	}
}

// TestDyadic: the blocks tile the range exactly, aligned, at most two per
// level.
func TestDyadic(t *testing.T) {
	t.Parallel()
	for _, r := range [][2]uint32{{0, 0}, {0, 1<<31 - 1}, {1, 9998}, {5, 5}, {7, 8}, {1 << 30, 1<<31 - 1}, {12345, 67890}} {
		next := uint64(r[0])
		perLevel := map[uint8]int{}
		dyadic(r[0], r[1], func(k blockKey) {
			start := uint64(k.index) << k.level
			if start != next {
				t.Fatalf("range %v: block %+v starts at %d, want %d", r, k, start, next)
			}
			next = start + 1<<k.level
			perLevel[k.level]++
		})
		if next != uint64(r[1])+1 {
			t.Fatalf("range %v: blocks end at %d", r, next)
		}
		for l, n := range perLevel {
			if n > 2 {
				t.Fatalf("range %v: %d blocks of level %d", r, n, l)
			}
		}
	}
}

// TestIntValue: which ids a range can select.
func TestIntValue(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]int64{"0": 0, "000": 0, "7": 7, "007": 7, "2147483647": 1<<31 - 1, "2147483648": -1, "99999999999999999999": -1, "": -1, "5flamingoes": -1, "-3": -1, "+3": -1} {
		v, ok := intValue(id)
		if got := int64(v); !ok {
			got = -1
			if want != -1 {
				t.Errorf("intValue(%q) not an integer, want %d", id, want)
			}
		} else if got != want {
			t.Errorf("intValue(%q) = %d, want %d", id, got, want)
		}
	}
	if _, ok := canonicalInt("07"); ok {
		t.Error("07 is canonical")
	}
}

// TestStoredDependsOn: a restart reads dependsOn from stored documents,
// whatever else they hold.
func TestStoredDependsOn(t *testing.T) {
	t.Parallel()
	for name, task := range map[string]*azbatch.Task{
		"none":        {ID: ptr("a"), CommandLine: ptr("true")},
		"plain":       {ID: ptr("a"), CommandLine: ptr("true"), DependsOn: dependsOn([]string{"x", "y"}, [2]int32{1, 5})},
		"quoted key":  {ID: ptr("a"), CommandLine: ptr(`/bin/sh -c 'echo "dependsOn": {"taskIds":["evil"]}'`), DependsOn: dependsOn([]string{"x", "y"}, [2]int32{1, 5})},
		"quoted only": {ID: ptr("a"), CommandLine: ptr(`/bin/sh -c 'echo "dependsOn": {"taskIds":["evil"]}'`)},
	} {
		doc, err := encodeTask(task)
		if err != nil {
			t.Fatal(err)
		}
		got := storedDependsOn(doc)
		if task.DependsOn == nil {
			if got != nil {
				t.Errorf("%s: dependsOn %+v read from %s", name, got, doc)
			}
			continue
		}
		if got == nil || fmt.Sprint(got.TaskIDs) != "[x y]" || len(got.TaskIDRanges) != 1 || *got.TaskIDRanges[0].End != 5 {
			t.Errorf("%s: dependsOn %+v read from %s", name, got, doc)
		}
	}
}

// TestDependencies_ReactivatedParent: a parent that failed and blocked its
// dependents can be reactivated; when it then succeeds, they run.
func TestDependencies_ReactivatedParent(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 4)
	b.addJob("job", nil)
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("7")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("byid"), DependsOn: dependsOn([]string{"7"})})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("byrange"), DependsOn: dependsOn(nil, [2]int32{5, 9})})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("5")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("6")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("8")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("9")})
	b.assigned()
	b.complete(exited(1), "7")
	b.run("5", "6", "8", "9")
	b.wantAssigned()
	if _, err := b.s.TaskReactivate(context.Background(), depsAccount, "job", "7", Conditions{}); err != nil {
		t.Fatal(err)
	}
	b.wantAssigned("7")
	b.complete(exited(0), "7")
	b.wantAssigned("byid", "byrange")
}
