package service

// Task dependencies, as Azure Batch has them: a job created with
// usesTaskDependencies accepts tasks whose dependsOn names parent tasks by
// id (taskIds) and by ranges of integer ids (taskIdRanges). A dependent task
// is active but stays out of its job's queue until every parent is
// satisfied: completed successfully, or completed with a failure whose exit
// conditions say dependencyAction satisfy (exit_conditions.go). A parent
// that fails with dependencyAction block (the default for any failure)
// keeps its dependents active for ever, as on Azure.
//
// The cost of a completion must not grow with the size of the job: a
// job may hold 100,000 tasks and a final task that depends on all of them
// through one range. So each job that uses dependencies keeps an index from
// parents to their waiting dependents, and each waiting task a counter of
// unsatisfied parents (taskState.parents). A completion looks its id up in
// the index, decrements the counters it finds, and queues the tasks whose
// counter reaches zero; nothing scans the job's tasks.
//
//   - taskIds: a map from lower-case parent id (Azure ids are
//     case-insensitive) to the tasks waiting for it.
//   - taskIdRanges: Azure matches a range against the integer value of task
//     ids made of digits ("4", "04" and "004" are all task 4, and the first
//     of them to be satisfied satisfies 4). A range is cut into aligned
//     power-of-two blocks, at most two per bit of the range; a block records
//     the tasks whose range covers it and how many of its values are still
//     unsatisfied. A satisfied value k visits the one block per level that
//     contains k (32 map lookups at most), and a block whose values are all
//     satisfied is dropped.
//
// Satisfied ids are remembered per job (canonical integer ids in bitsets,
// other ids in a map), so that a task added later knows at once which of
// its parents are already satisfied; a parent that does not exist yet is
// simply waited for. As on Azure (Azure/Batch#129, "by design"), deleting a
// satisfied parent does not make it unsatisfied again. After a restart the
// index is rebuilt from the store (load.go): completed tasks first, then
// the unfinished ones; a satisfied parent deleted before the restart is
// then forgotten.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
)

// Azure's limits on a task's dependsOn.
const (
	// MaxDependencyIDsLength bounds the combined length of dependsOn.taskIds
	// (TaskDependencyListTooLong beyond it).
	MaxDependencyIDsLength = 64000
	// MaxDependencyRangesLength bounds dependsOn.taskIdRanges written as
	// "start-end," (TaskDependencyRangesTooLong beyond it): Azure stores the
	// ranges in the same 64,000 characters and limits their number, not
	// their size.
	MaxDependencyRangesLength = 64000
)

// jobDeps is the dependency index of a job that uses task dependencies.
type jobDeps struct {
	// Satisfied parents: ids that are canonical integers ("0", "42") in
	// doneInts, other ids (lower-case) in doneNames; doneVals holds the
	// integer values satisfied for ranges, whatever the leading zeros.
	doneNames map[string]struct{}
	doneInts  bitset
	doneVals  bitset

	// Waiting dependents: by lower-case parent id, and by range block.
	byID   map[string][]*taskState
	blocks map[blockKey]*rangeBlock
	levels uint32 // bit l: some block of level l exists
}

// blockKey names the aligned block of values [index<<level, (index+1)<<level).
type blockKey struct {
	level uint8
	index uint32
}

// rangeBlock holds the tasks waiting on a range that covers the block, and
// the number of the block's values not satisfied yet.
type rangeBlock struct {
	left    int64
	waiting []*taskState
}

// jobDepsLocked returns the job's dependency index, or nil when the job
// does not use task dependencies.
func (s *Service) jobDepsLocked(j *jobState) *jobDeps {
	if j.deps == nil && deref(j.doc.UsesTaskDependencies) {
		j.deps = &jobDeps{
			doneNames: map[string]struct{}{},
			doneInts:  bitset{},
			doneVals:  bitset{},
			byID:      map[string][]*taskState{},
			blocks:    map[blockKey]*rangeBlock{},
		}
	}
	return j.deps
}

// validateDependsOn checks a task's dependsOn; uses says whether its job
// was created with usesTaskDependencies.
func validateDependsOn(taskID string, d *azbatch.TaskDependencies, uses bool) error {
	if d == nil || len(d.TaskIDs)+len(d.TaskIDRanges) == 0 {
		return nil
	}
	if !uses {
		return batch.Errorf(http.StatusBadRequest, "TaskDependenciesNotSpecifiedOnJob", "The task depends on other tasks, but its job does not use task dependencies.").With("taskId", taskID)
	}
	total := 0
	for _, id := range d.TaskIDs {
		total += len(id)
	}
	if total > MaxDependencyIDsLength {
		return batch.Errorf(http.StatusBadRequest, "TaskDependencyListTooLong", "The task ids of dependsOn.taskIds are %d characters long together; at most %d are allowed. Consider task id ranges instead.", total, MaxDependencyIDsLength).With("taskId", taskID)
	}
	for i, id := range d.TaskIDs {
		if err := batch.ValidateID(fmt.Sprintf("dependsOn.taskIds[%d]", i), id, 64); err != nil {
			return err
		}
	}
	stored := 0
	for i, r := range d.TaskIDRanges {
		prop := fmt.Sprintf("dependsOn.taskIdRanges[%d]", i)
		switch {
		case r.Start == nil:
			return batch.MissingProperty(prop + ".start")
		case r.End == nil:
			return batch.MissingProperty(prop + ".end")
		case *r.Start < 0:
			return batch.InvalidProperty(prop+".start", itoa(*r.Start), "A task id range starts at 0 or more.")
		case *r.Start > *r.End:
			return batch.InvalidProperty(prop+".start", itoa(*r.Start), fmt.Sprintf("The start of a task id range must not be greater than its end (%d).", *r.End))
		}
		stored += len(itoa(*r.Start)) + len(itoa(*r.End)) + 2
	}
	if stored > MaxDependencyRangesLength {
		return batch.Errorf(http.StatusBadRequest, "TaskDependencyRangesTooLong", "The task has too many dependsOn.taskIdRanges (%d).", len(d.TaskIDRanges)).With("taskId", taskID)
	}
	return nil
}

// waitForParentsLocked indexes a task being accepted (added, reactivated)
// as a dependent of its unsatisfied parents and reports whether it must
// wait for them instead of entering its job's queue. t.doc is set.
func (s *Service) waitForParentsLocked(t *taskState) bool {
	if t.doc == nil || t.doc.DependsOn == nil {
		return false
	}
	d := s.jobDepsLocked(t.job)
	if d == nil {
		return false
	}
	return d.register(t, t.doc.DependsOn)
}

// loadWaitForParentsLocked is waitForParentsLocked for a task rebuilt at
// start from its stored document, which it keeps no copy of.
func (s *Service) loadWaitForParentsLocked(t *taskState, doc []byte) bool {
	d := s.jobDepsLocked(t.job)
	if d == nil {
		return false
	}
	dep := storedDependsOn(doc)
	if dep == nil {
		return false
	}
	return d.register(t, dep)
}

// storedDependsOn reads the dependsOn of a stored task document. A restart
// reads every waiting task, so it decodes the dependsOn value alone where
// the document has it at top level (encodeTask writes top-level keys
// unescaped; a quote inside a string is escaped), and the whole document
// only when that fails.
func storedDependsOn(doc []byte) *azbatch.TaskDependencies {
	key := []byte(`"dependsOn":`)
	i := bytes.Index(doc, key)
	if i < 0 {
		return nil
	}
	var dep *azbatch.TaskDependencies
	if i > 0 && doc[i-1] != '\\' {
		if err := json.NewDecoder(bytes.NewReader(doc[i+len(key):])).Decode(&dep); err == nil {
			return dep
		}
	}
	var m struct {
		DependsOn *azbatch.TaskDependencies `json:"dependsOn"`
	}
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil
	}
	return m.DependsOn
}

// register records t as waiting for the parents of dep that are not
// satisfied yet, sets t.parents to their number and reports whether there
// are any.
func (d *jobDeps) register(t *taskState, dep *azbatch.TaskDependencies) bool {
	var n int64
	for _, p := range dep.TaskIDs {
		id := strings.ToLower(p)
		if d.satisfied(id) {
			continue
		}
		d.byID[id] = append(d.byID[id], t)
		n++
	}
	for _, r := range dep.TaskIDRanges {
		if r.Start == nil || r.End == nil || *r.Start < 0 || *r.Start > *r.End {
			continue // refused when added; a stored document is trusted no further
		}
		lo, hi := uint32(*r.Start), uint32(*r.End)
		left := int64(hi-lo) + 1 - d.doneVals.count(lo, hi)
		if left == 0 {
			continue
		}
		n += left
		dyadic(lo, hi, func(k blockKey) {
			b := d.blocks[k]
			if b == nil {
				start := k.index << k.level
				b = &rangeBlock{left: int64(1)<<k.level - d.doneVals.count(start, start+(1<<k.level-1))}
				if b.left == 0 {
					return
				}
				d.blocks[k] = b
				d.levels |= 1 << k.level
			}
			b.waiting = append(b.waiting, t)
		})
	}
	t.parents = n
	return n > 0
}

// satisfied reports whether the task with lower-case id lid is satisfied.
func (d *jobDeps) satisfied(lid string) bool {
	if v, ok := canonicalInt(lid); ok {
		return d.doneInts.has(v)
	}
	_, ok := d.doneNames[lid]
	return ok
}

// parentSatisfiedLocked records that the task id of job j is satisfied and
// queues the dependents that no longer wait for anything.
func (s *Service) parentSatisfiedLocked(j *jobState, id string) {
	d := s.jobDepsLocked(j)
	if d == nil {
		return
	}
	lid := strings.ToLower(id)
	fresh := false
	if v, ok := canonicalInt(lid); ok {
		fresh = d.doneInts.add(v)
	} else if _, ok := d.doneNames[lid]; !ok {
		d.doneNames[lid] = struct{}{}
		fresh = true
	}
	if fresh {
		for _, t := range d.byID[lid] {
			s.parentDoneLocked(t)
		}
		delete(d.byID, lid)
	}
	v, ok := intValue(lid)
	if !ok || !d.doneVals.add(v) {
		return
	}
	for l := uint8(0); l < 32; l++ {
		if d.levels&(1<<l) == 0 {
			continue
		}
		k := blockKey{level: l, index: v >> l}
		b := d.blocks[k]
		if b == nil {
			continue
		}
		b.left--
		for _, t := range b.waiting {
			s.parentDoneLocked(t)
		}
		if b.left <= 0 {
			delete(d.blocks, k)
		}
	}
}

// parentDoneLocked counts one satisfied parent of a waiting task and queues
// it when that was the last. A task deleted or completed meanwhile (the
// index forgets nobody eagerly) is left alone.
func (s *Service) parentDoneLocked(t *taskState) {
	if t.parents <= 0 {
		return
	}
	t.parents--
	if t.parents > 0 || t.queued || t.attempt != nil || s.tasks[t.key()] != t {
		return
	}
	if queuesTasks(t.job) {
		t.job.push(t)
	}
}

// intValue is the integer a task id stands for in a range dependency: ids
// of decimal digits only (leading zeros allowed) up to MaxInt32.
func intValue(id string) (uint32, bool) {
	if id == "" || strings.TrimLeft(id, "0123456789") != "" {
		return 0, false
	}
	digits := strings.TrimLeft(id, "0")
	if digits == "" {
		return 0, true
	}
	v, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || v > math.MaxInt32 {
		return 0, false
	}
	return uint32(v), true
}

// canonicalInt is intValue for ids written without leading zeros, the
// only ones a bitset can stand for exactly.
func canonicalInt(id string) (uint32, bool) {
	if len(id) > 1 && id[0] == '0' {
		return 0, false
	}
	return intValue(id)
}

// dyadic calls f for the aligned power-of-two blocks that tile [lo, hi].
func dyadic(lo, hi uint32, f func(blockKey)) {
	a, end := uint64(lo), uint64(hi)+1
	for a < end {
		l := 31
		if a != 0 {
			l = min(bits.TrailingZeros64(a), 31)
		}
		for a+1<<l > end {
			l--
		}
		f(blockKey{level: uint8(l), index: uint32(a >> l)})
		a += 1 << l
	}
}

// bitset is a sparse set of values below 2^31, in chunks of 4096 bits.
type bitset map[uint32]*[64]uint64

func (b bitset) has(v uint32) bool {
	c := b[v>>12]
	return c != nil && c[v>>6&63]&(1<<(v&63)) != 0
}

// add inserts v and reports whether it was absent.
func (b bitset) add(v uint32) bool {
	c := b[v>>12]
	if c == nil {
		c = new([64]uint64)
		b[v>>12] = c
	}
	w, m := v>>6&63, uint64(1)<<(v&63)
	if c[w]&m != 0 {
		return false
	}
	c[w] |= m
	return true
}

// count returns how many values of [lo, hi] are in b. It visits the chunks
// the range spans, or every chunk of the set when there are fewer: a range
// of two billion values over a small set costs what the set holds.
func (b bitset) count(lo, hi uint32) int64 {
	c0, c1 := lo>>12, hi>>12
	var n int64
	if int(c1-c0) < len(b) {
		for c := c0; c <= c1; c++ {
			if ch := b[c]; ch != nil {
				n += chunkCount(ch, c, lo, hi)
			}
		}
		return n
	}
	for c, ch := range b {
		if c >= c0 && c <= c1 {
			n += chunkCount(ch, c, lo, hi)
		}
	}
	return n
}

// chunkCount counts the values of chunk c within [lo, hi].
func chunkCount(ch *[64]uint64, c, lo, hi uint32) int64 {
	base := c << 12
	a, z := uint32(0), uint32(4095)
	if lo > base {
		a = lo - base
	}
	if hi < base+4095 {
		z = hi - base
	}
	n := 0
	for w := a >> 6; w <= z>>6; w++ {
		x := ch[w]
		if w == a>>6 {
			x &= ^uint64(0) << (a & 63)
		}
		if w == z>>6 {
			x &= ^uint64(0) >> (63 - z&63)
		}
		n += bits.OnesCount64(x)
	}
	return int64(n)
}
