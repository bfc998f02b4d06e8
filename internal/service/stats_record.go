package service

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/store"
)

// statsState holds the exact totals behind the job and lifetime statistics
// (see stats.go). Its maps are created on first use.
type statsState struct {
	jobs     map[*jobState]*usageTotals
	accounts map[string]*accountTotals // by lower-case account name
	// dirty jobs and accounts have changed totals not yet in a commit's
	// writes: commit writes each once, however many attempts ended.
	dirtyJobs     map[*jobState]bool
	dirtyAccounts map[*accountTotals]bool
}

// accountTotals are an account's lifetime statistics.
type accountTotals struct {
	account string
	// Jobs sums every task attempt of the account's jobs, deleted ones
	// included; the lifetime pool statistics reuse its CPU and I/O.
	Jobs usageTotals
	// Nodes sums the time nodes that left their pool spent in it (nodes
	// still there are added when read), DedicatedNodes that of the
	// dedicated ones.
	Nodes poolTotals
}

type poolTotals struct {
	NodeTime          int64 `json:"nodeTimeNs"`
	DedicatedNodeTime int64 `json:"dedicatedNodeTimeNs"`
}

// Kinds of account statistics records.
const (
	statsKindJobs  = "jobs"
	statsKindPools = "pools"
)

func (s *Service) jobTotalsLocked(j *jobState) *usageTotals {
	if s.st.jobs == nil {
		s.st.jobs = map[*jobState]*usageTotals{}
	}
	u := s.st.jobs[j]
	if u == nil {
		u = &usageTotals{}
		s.st.jobs[j] = u
	}
	return u
}

func (s *Service) forgetJobStatsLocked(j *jobState) {
	delete(s.st.jobs, j)
	delete(s.st.dirtyJobs, j)
}

// flushStatsLocked adds the changed statistics to w (commit calls it).
func (s *Service) flushStatsLocked(w *store.Writes) {
	for j := range s.st.dirtyJobs {
		if s.jobs[key(j.account, j.id())] == j {
			u := s.jobTotalsLocked(j)
			j.doc.Stats = u.jobStatistics(deref(j.doc.URL), deref(j.doc.CreationTime), false)
			// Statistics do not change the job's ETag: they are not among
			// its properties a client sets.
			s.writeJob(j, w)
		}
		delete(s.st.dirtyJobs, j)
	}
	for a := range s.st.dirtyAccounts {
		s.writeAccountStats(a, w)
		delete(s.st.dirtyAccounts, a)
	}
}

func (s *Service) accountTotalsLocked(account string) *accountTotals {
	if s.st.accounts == nil {
		s.st.accounts = map[string]*accountTotals{}
	}
	k := strings.ToLower(account)
	a := s.st.accounts[k]
	if a == nil {
		a = &accountTotals{account: account}
		s.st.accounts[k] = a
	}
	return a
}

// writeAccountStats adds the account's statistics records to w.
func (s *Service) writeAccountStats(a *accountTotals, w *store.Writes) {
	jobs, _ := json.Marshal(a.Jobs)
	pools, _ := json.Marshal(a.Nodes)
	for _, rec := range []store.AccountStats{
		{Account: a.account, Kind: statsKindJobs, Doc: jobs},
		{Account: a.account, Kind: statsKindPools, Doc: pools},
	} {
		replaced := false
		for i := range w.AccountStats {
			if strings.EqualFold(w.AccountStats[i].Account, rec.Account) && w.AccountStats[i].Kind == rec.Kind {
				w.AccountStats[i] = rec
				replaced = true
			}
		}
		if !replaced {
			w.AccountStats = append(w.AccountStats, rec)
		}
	}
}

// ensureJobStats gives a job its statistics document (all zero at first),
// which Get Job shows with $expand=stats.
func (s *Service) ensureJobStats(j *jobState) {
	if j.doc.Stats != nil {
		return
	}
	u := s.jobTotalsLocked(j)
	j.doc.Stats = u.jobStatistics(deref(j.doc.URL), deref(j.doc.CreationTime), false)
}

// changeJobStatsLocked applies change to a job's and its account's totals
// and writes both.
func (s *Service) changeJobStatsLocked(j *jobState, change func(*usageTotals), w *store.Writes) {
	now := s.now()
	a := s.accountTotalsLocked(j.account)
	change(&a.Jobs)
	a.Jobs.LastUpdate = now
	s.markDirty(nil, a)
	if s.jobs[key(j.account, j.id())] != j {
		return // deleted meanwhile: only the account keeps it
	}
	u := s.jobTotalsLocked(j)
	change(u)
	u.LastUpdate = now
	s.markDirty(j, nil)
}

func (s *Service) markDirty(j *jobState, a *accountTotals) {
	if s.st.dirtyJobs == nil {
		s.st.dirtyJobs = map[*jobState]bool{}
		s.st.dirtyAccounts = map[*accountTotals]bool{}
	}
	if j != nil {
		s.st.dirtyJobs[j] = true
	}
	if a != nil {
		s.st.dirtyAccounts[a] = true
	}
}

// recordAttemptLocked counts the attempt of t that ended with ev (called
// before t's state changes).
func (s *Service) recordAttemptLocked(t *taskState, ev protocol.Event, w *store.Writes) {
	u := usageOf(ev)
	addTaskStats(t.doc, u, ev.StartTime.UTC(), s.now())
	s.changeJobStatsLocked(t.job, func(tot *usageTotals) { tot.addUsage(u) }, w)
}

// recordRetryLocked counts a retry of t.
func (s *Service) recordRetryLocked(t *taskState, w *store.Writes) {
	s.changeJobStatsLocked(t.job, func(tot *usageTotals) { tot.Retries++ }, w)
}

// recordTaskEndLocked counts a task that completed, and its wait in the
// account's lifetime statistics.
func (s *Service) recordTaskEndLocked(t *taskState, w *store.Writes) {
	failed := t.doc.ExecutionInfo != nil && deref(t.doc.ExecutionInfo.Result) == azbatch.TaskExecutionResultFailure
	wait := taskWait(t.doc)
	s.changeJobStatsLocked(t.job, func(tot *usageTotals) {
		if failed {
			tot.Failed++
		} else {
			tot.Succeeded++
		}
		tot.Wait += wait
	}, w)
}

// recordStoppedAttemptLocked counts what a stopped attempt consumed until
// its process died: for its job (if it still exists) and account, and for
// its task, whether the task waits to run again (in memory) or completed
// (in the store).
func (s *Service) recordStoppedAttemptLocked(pk *pendingKill, ev protocol.Event, w *store.Writes) {
	u := usageOf(ev)
	j := pk.job
	s.changeJobStatsLocked(j, func(tot *usageTotals) { tot.addUsage(u) }, w)
	if s.jobs[key(j.account, j.id())] != j || j.state() == azbatch.JobStateDeleting {
		return
	}
	t := pk.task
	if cur, ok := s.tasks[t.key()]; ok && cur == t {
		if _, err := s.docLocked(context.Background(), t); err != nil {
			return
		}
		addTaskStats(t.doc, u, time.Time{}, s.now())
		s.writeTask(t, w)
		return
	}
	// Completed: its latest record is among the writes not yet committed,
	// or in the store.
	var rec *store.Task
	for i := range w.Tasks {
		if w.Tasks[i].Account == j.account && w.Tasks[i].JobID == j.id() && w.Tasks[i].ID == t.id() {
			rec = &w.Tasks[i]
		}
	}
	if rec == nil {
		stored, err := s.cfg.Store.TaskGet(context.Background(), j.account, j.id(), t.id())
		if err != nil {
			return // deleted
		}
		w.Tasks = append(w.Tasks, stored)
		rec = &w.Tasks[len(w.Tasks)-1]
	}
	doc, err := decodeTask(rec.Doc)
	if err != nil {
		return
	}
	addTaskStats(doc, u, time.Time{}, s.now())
	if b, err := encodeTask(doc); err == nil {
		rec.Doc = b
	}
}

// recordNodeGoneLocked adds the time a node leaving its pool spent in it to
// the account's lifetime pool statistics.
func (s *Service) recordNodeGoneLocked(n *nodeState, w *store.Writes) {
	if n.doc.AllocationTime == nil {
		return
	}
	d := max(s.now().Sub(*n.doc.AllocationTime), 0)
	a := s.accountTotalsLocked(n.account)
	a.Nodes.NodeTime += int64(d)
	if n.dedicated {
		a.Nodes.DedicatedNodeTime += int64(d)
	}
	s.markDirty(nil, a)
}

// jobUsageKey is the member of a job's record that keeps its exact totals.
const jobUsageKey = "kilnUsage"

// jobRecordDoc adds a job's exact totals to its encoded document, for the
// store. Clients never see the record: Get and List Job encode the
// document itself.
func (s *Service) jobRecordDoc(j *jobState, doc []byte) []byte {
	u := s.st.jobs[j]
	if u == nil || len(doc) < 2 || doc[len(doc)-1] != '}' {
		return doc
	}
	extra, err := json.Marshal(u)
	if err != nil {
		return doc
	}
	var b bytes.Buffer
	b.Grow(len(doc) + len(extra) + len(jobUsageKey) + 4)
	b.Write(doc[:len(doc)-1])
	if len(bytes.TrimSpace(doc[1:len(doc)-1])) > 0 {
		b.WriteByte(',')
	}
	b.WriteString(`"` + jobUsageKey + `":`)
	b.Write(extra)
	b.WriteByte('}')
	return b.Bytes()
}

// loadJobStats takes a loaded job's exact totals from its record.
func (s *Service) loadJobStats(j *jobState, recDoc []byte) {
	var v struct {
		Usage *usageTotals `json:"kilnUsage"`
	}
	if json.Unmarshal(recDoc, &v) == nil && v.Usage != nil {
		*s.jobTotalsLocked(j) = *v.Usage
	}
	s.ensureJobStats(j)
}

// loadAccountStats reads every account's lifetime statistics at start.
func (s *Service) loadAccountStats(ctx context.Context) error {
	recs, err := s.cfg.Store.AccountStatsList(ctx)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		a := s.accountTotalsLocked(rec.Account)
		switch rec.Kind {
		case statsKindJobs:
			_ = json.Unmarshal(rec.Doc, &a.Jobs)
		case statsKindPools:
			_ = json.Unmarshal(rec.Doc, &a.Nodes)
		}
	}
	return nil
}
