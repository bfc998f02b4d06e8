// Package store declares the interface through which Kiln keeps its record:
// accounts, pools, nodes, jobs and tasks. Implementations live in sibling
// packages (sqlite, later postgres) and all pass the suite in storetest.
//
// Records carry the object's JSON document (Doc, the Azure Batch wire shape
// that GET returns) plus the few columns that are queried or indexed. The
// store never interprets Doc.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by getters when no record matches.
var ErrNotFound = errors.New("store: not found")

// ErrExists is returned when inserting a record whose key is taken.
var ErrExists = errors.New("store: already exists")

// Account is a Batch account with its shared keys (base64 as Azure shows them).
type Account struct {
	Name         string
	PrimaryKey   string
	SecondaryKey string
	CreationTime time.Time
}

// Pool is a pool record.
type Pool struct {
	Account string
	ID      string
	Doc     []byte
}

// Node is a compute node record.
type Node struct {
	Account string
	ID      string
	PoolID  string
	State   string
	Doc     []byte
}

// Job is a job record.
type Job struct {
	Account  string
	ID       string
	PoolID   string
	State    string
	Priority int32
	Doc      []byte
}

// Task is a task record. Seq is assigned by the store on insert and orders a
// job's tasks by creation; it is also the paging cursor.
type Task struct {
	Account   string
	JobID     string
	ID        string
	Seq       int64
	State     string
	NodeID    string // node of the current attempt, "" when none
	AttemptID string // current attempt, "" when none
	Slots     int32  // requiredSlots, summed by TaskCounts
	// Result is the executionInfo.result of a completed task ("success" or
	// "failure"; "" while it has none), indexed so that a job's failed
	// tasks are found without reading its other tasks.
	Result string
	Doc    []byte
}

// TaskKey names one task.
type TaskKey struct{ Account, JobID, ID string }

// Writes is a set of changes applied atomically by Apply. Upserts replace the
// whole record (Seq of an existing task is kept). Deletes of missing records
// are not errors. Order inside one Writes: deletes first, then upserts.
type Writes struct {
	Pools       []Pool
	DeletePools []Pool // only Account and ID are read
	Nodes       []Node
	DeleteNodes []Node // only Account and ID are read
	Jobs        []Job
	DeleteJobs  []Job // only Account and ID are read; also deletes the job's tasks
	Tasks       []Task
	DeleteTasks []TaskKey
	// JobSchedules are upserted; DeleteJobSchedules read only Account and
	// ID. Deleting a schedule does not delete its jobs: those are
	// DeleteJobs of their own.
	JobSchedules       []JobSchedule
	DeleteJobSchedules []JobSchedule
	// AccountStats are upserted by account and kind.
	AccountStats []AccountStats
	// Certificates are upserted by account, thumbprint algorithm and
	// thumbprint; DeleteCertificates read only those.
	Certificates       []Certificate
	DeleteCertificates []Certificate
}

// Empty reports whether w holds no change.
func (w *Writes) Empty() bool {
	return len(w.Pools)+len(w.DeletePools)+len(w.Nodes)+len(w.DeleteNodes)+
		len(w.Jobs)+len(w.DeleteJobs)+len(w.Tasks)+len(w.DeleteTasks)+
		len(w.JobSchedules)+len(w.DeleteJobSchedules)+len(w.AccountStats)+
		len(w.Certificates)+len(w.DeleteCertificates) == 0
}

// TaskListParams selects tasks of one job, in Seq order.
type TaskListParams struct {
	Account  string
	JobID    string
	AfterSeq int64    // return tasks with Seq > AfterSeq
	Limit    int      // 0: no limit
	States   []string // empty: every state
	Result   string   // non-empty: only tasks with this Result
}

// StateCount is the number of tasks of a job in one state, and the sum of
// their required slots.
type StateCount struct {
	State string
	Count int64
	Slots int64
}

// Store is the record of Kiln's state. Every method is safe for concurrent use.
type Store interface {
	AccountGet(ctx context.Context, name string) (Account, error)
	AccountInsert(ctx context.Context, a Account) error // ErrExists
	AccountList(ctx context.Context) ([]Account, error)
	// AccountUpdate replaces the keys of the account a names (its creation
	// time is kept); ErrNotFound when there is none.
	AccountUpdate(ctx context.Context, a Account) error

	// PoolInsert, JobInsert: ErrExists when the id is taken (case-insensitive,
	// as Azure ids are).
	PoolInsert(ctx context.Context, p Pool) error
	PoolGet(ctx context.Context, account, id string) (Pool, error)
	PoolList(ctx context.Context, account string) ([]Pool, error) // ordered by id

	NodeGet(ctx context.Context, account, id string) (Node, error)
	NodeListByPool(ctx context.Context, account, poolID string) ([]Node, error) // ordered by id
	NodeListAll(ctx context.Context) ([]Node, error)

	JobInsert(ctx context.Context, j Job) error
	JobGet(ctx context.Context, account, id string) (Job, error)
	JobList(ctx context.Context, account string) ([]Job, error) // ordered by id

	// JobScheduleInsert: ErrExists when the id is taken (case-insensitive).
	JobScheduleInsert(ctx context.Context, js JobSchedule) error
	JobScheduleGet(ctx context.Context, account, id string) (JobSchedule, error)
	JobScheduleList(ctx context.Context, account string) ([]JobSchedule, error) // ordered by id

	// AccountStatsList returns every account's lifetime statistics records
	// (ordered by account and kind); Apply upserts them.
	AccountStatsList(ctx context.Context) ([]AccountStats, error)

	// CertificateList returns every account's certificates (ordered by
	// account, thumbprint algorithm and thumbprint); Apply upserts and
	// deletes them.
	CertificateList(ctx context.Context) ([]Certificate, error)

	// TaskInsert inserts tasks of one job in one transaction and returns, for
	// each input task in order, nil or ErrExists. Seq is assigned in input order.
	TaskInsert(ctx context.Context, tasks []Task) ([]error, error)
	TaskGet(ctx context.Context, account, jobID, id string) (Task, error)
	TaskList(ctx context.Context, p TaskListParams) ([]Task, error)
	// TaskListUnfinished returns every task not in state completed, across all
	// accounts and jobs, ordered by (account, job, seq): the scheduler rebuilds
	// its queues from it at start.
	TaskListUnfinished(ctx context.Context) ([]Task, error)
	// TaskListUnfinishedPage returns at most limit tasks not in state
	// completed with Seq > afterSeq, across all accounts and jobs, in Seq
	// order: a restarting server reads a million unfinished tasks a page at
	// a time instead of all at once.
	TaskListUnfinishedPage(ctx context.Context, afterSeq int64, limit int) ([]Task, error)
	// TaskCounts returns per-state counts of one job's tasks with the sum of
	// their Slots.
	TaskCounts(ctx context.Context, account, jobID string) ([]StateCount, error)

	// Apply commits w in one transaction.
	Apply(ctx context.Context, w *Writes) error

	Close() error
}
