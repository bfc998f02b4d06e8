package service

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/odata"
)

// This file lists the operations the HTTP API calls, one per Azure Batch
// operation. Every method takes the account the request authenticated as.
// Reads return Objects: the stored JSON document in Azure's wire shape plus
// its ETag and Last-Modified, so the API can answer without re-encoding.

// Object is one resource as stored: Doc is its Azure Batch JSON (without
// odata.metadata), ETag and LastModified feed the response headers.
type Object struct {
	Doc          []byte
	ETag         string
	LastModified time.Time
	CreationTime time.Time
}

// Conditions are the If-* request headers of a call; zero fields are absent.
type Conditions struct {
	IfMatch           string
	IfNoneMatch       string
	IfModifiedSince   time.Time
	IfUnmodifiedSince time.Time
}

// ListParams page and filter a list. Cursor is the opaque value of a previous
// ListPage.Next ("" for the first page). Limit is at most 1000 (0 means 1000).
type ListParams struct {
	Filter *odata.Filter
	Cursor string
	Limit  int
}

// ListPage is one page of results; Next is "" on the last page.
type ListPage struct {
	Items []Object
	Next  string
}

// TaskCounts is the answer of Job - Get Task Counts.
type TaskCounts = azbatch.TaskCountsResult

// Operations is everything the REST API needs from the service. *Service
// implements it.
type Operations interface {
	// Accounts.
	AccountKeys(name string) (keys [][]byte, ok bool)

	// Pools.
	PoolAdd(ctx context.Context, account string, c *azbatch.CreatePoolContent) (Object, error)
	PoolGet(ctx context.Context, account, poolID string, cond Conditions) (Object, error)
	PoolList(ctx context.Context, account string, p ListParams) (ListPage, error)
	PoolDelete(ctx context.Context, account, poolID string, cond Conditions) error
	PoolPatch(ctx context.Context, account, poolID string, c *azbatch.UpdatePoolContent, cond Conditions) (Object, error)
	PoolReplace(ctx context.Context, account, poolID string, c *azbatch.ReplacePoolContent, cond Conditions) (Object, error)
	PoolResize(ctx context.Context, account, poolID string, c *azbatch.ResizePoolContent, cond Conditions) (Object, error)
	PoolStopResize(ctx context.Context, account, poolID string, cond Conditions) (Object, error)
	PoolRemoveNodes(ctx context.Context, account, poolID string, c *azbatch.RemoveNodeContent, cond Conditions) (Object, error)
	PoolNodeCounts(ctx context.Context, account string, p ListParams) ([]azbatch.PoolNodeCounts, error)
	SupportedImages() []azbatch.SupportedImage
	// Autoscale (autoscale.go).
	AutoScaleOperations

	// Compute nodes.
	NodeList(ctx context.Context, account, poolID string, p ListParams) (ListPage, error)
	NodeGet(ctx context.Context, account, poolID, nodeID string) (Object, error)
	NodeReboot(ctx context.Context, account, poolID, nodeID string, c *azbatch.RebootNodeContent) error
	NodeDisableScheduling(ctx context.Context, account, poolID, nodeID string, c *azbatch.DisableNodeSchedulingContent) error
	NodeEnableScheduling(ctx context.Context, account, poolID, nodeID string) error
	// NodeFiles locates a node's files: paths are relative to the node root.
	NodeFiles(ctx context.Context, account, poolID, nodeID string) (FileTarget, error)
	// Node operations, users, extensions and usage (node_ops.go,
	// node_users.go).
	NodeReimage(ctx context.Context, account, poolID, nodeID string, c *azbatch.ReimageNodeContent) error
	NodeDeallocate(ctx context.Context, account, poolID, nodeID string, c *azbatch.DeallocateNodeContent) error
	NodeStart(ctx context.Context, account, poolID, nodeID string) error
	NodeUploadLogs(ctx context.Context, account, poolID, nodeID string, c *azbatch.UploadNodeLogsContent) (azbatch.UploadNodeLogsResult, error)
	NodeExtensions(ctx context.Context, account, poolID, nodeID string) ([]azbatch.NodeVMExtension, error)
	NodeExtension(ctx context.Context, account, poolID, nodeID, name string) (azbatch.NodeVMExtension, error)
	NodeRemoteLoginSettings(ctx context.Context, account, poolID, nodeID string) (azbatch.NodeRemoteLoginSettings, error)
	NodeUserAdd(ctx context.Context, account, poolID, nodeID string, c *azbatch.CreateNodeUserContent) error
	NodeUserUpdate(ctx context.Context, account, poolID, nodeID, name string, c *azbatch.UpdateNodeUserContent) error
	NodeUserDelete(ctx context.Context, account, poolID, nodeID, name string) error
	// PoolUsageMetrics lists core hours per pool and aggregation interval
	// overlapping [start, end) (zero: the latest interval).
	PoolUsageMetrics(ctx context.Context, account string, start, end time.Time, p ListParams) (ListPage, error)

	// Certificates (certificates.go); alg and thumbprint as in the URL.
	CertificateAdd(ctx context.Context, account string, c *azbatch.Certificate) error
	CertificateList(ctx context.Context, account string, p ListParams) (ListPage, error)
	CertificateGet(ctx context.Context, account, alg, thumbprint string) (Object, error)
	CertificateDelete(ctx context.Context, account, alg, thumbprint string) error
	CertificateCancelDeletion(ctx context.Context, account, alg, thumbprint string) error

	// Jobs.
	JobAdd(ctx context.Context, account string, c *azbatch.CreateJobContent) (Object, error)
	JobGet(ctx context.Context, account, jobID string, cond Conditions) (Object, error)
	JobList(ctx context.Context, account string, p ListParams) (ListPage, error)
	JobDelete(ctx context.Context, account, jobID string, cond Conditions) error
	JobPatch(ctx context.Context, account, jobID string, c *azbatch.UpdateJobContent, cond Conditions) (Object, error)
	JobReplace(ctx context.Context, account, jobID string, c *azbatch.Job, cond Conditions) (Object, error)
	JobDisable(ctx context.Context, account, jobID string, c *azbatch.DisableJobContent, cond Conditions) (Object, error)
	JobEnable(ctx context.Context, account, jobID string, cond Conditions) (Object, error)
	JobTerminate(ctx context.Context, account, jobID string, c *azbatch.TerminateJobContent, cond Conditions) (Object, error)
	JobTaskCounts(ctx context.Context, account, jobID string) (TaskCounts, error)
	// JobPrepReleaseStatus lists, per node, the job preparation and release
	// task runs of a job.
	JobPrepReleaseStatus(ctx context.Context, account, jobID string, p ListParams) (ListPage, error)
	// LifetimeJobStats and LifetimePoolStats are the account's lifetime
	// statistics (Job_GetAllLifetimeStatistics, Pool_GetAllLifetimeStatistics).
	LifetimeJobStats(ctx context.Context, account string) (azbatch.JobStatistics, error)
	LifetimePoolStats(ctx context.Context, account string) (azbatch.PoolStatistics, error)

	// Job schedules.
	JobScheduleAdd(ctx context.Context, account string, c *azbatch.CreateJobScheduleContent) (Object, error)
	JobScheduleGet(ctx context.Context, account, id string, cond Conditions) (Object, error)
	JobScheduleList(ctx context.Context, account string, p ListParams) (ListPage, error)
	JobScheduleDelete(ctx context.Context, account, id string, cond Conditions) error
	JobSchedulePatch(ctx context.Context, account, id string, c *azbatch.UpdateJobScheduleContent, cond Conditions) (Object, error)
	JobScheduleReplace(ctx context.Context, account, id string, c *azbatch.JobSchedule, cond Conditions) (Object, error)
	JobScheduleDisable(ctx context.Context, account, id string, cond Conditions) (Object, error)
	JobScheduleEnable(ctx context.Context, account, id string, cond Conditions) (Object, error)
	JobScheduleTerminate(ctx context.Context, account, id string, cond Conditions) (Object, error)
	// JobListFromSchedule lists the jobs a schedule created.
	JobListFromSchedule(ctx context.Context, account, id string, p ListParams) (ListPage, error)

	// Tasks.
	TaskAdd(ctx context.Context, account, jobID string, c *azbatch.CreateTaskContent) (Object, error)
	// TaskAddCollection adds up to 100 tasks; each gets its own result.
	TaskAddCollection(ctx context.Context, account, jobID string, tasks []azbatch.CreateTaskContent) ([]azbatch.TaskAddResult, error)
	TaskGet(ctx context.Context, account, jobID, taskID string, cond Conditions) (Object, error)
	TaskList(ctx context.Context, account, jobID string, p ListParams) (ListPage, error)
	TaskReplace(ctx context.Context, account, jobID, taskID string, c *azbatch.Task, cond Conditions) (Object, error)
	TaskDelete(ctx context.Context, account, jobID, taskID string, cond Conditions) error
	TaskTerminate(ctx context.Context, account, jobID, taskID string, cond Conditions) (Object, error)
	TaskReactivate(ctx context.Context, account, jobID, taskID string, cond Conditions) (Object, error)
	// TaskSubtasks lists the subtasks of a multi-instance task (none for
	// another task).
	TaskSubtasks(ctx context.Context, account, jobID, taskID string) (ListPage, error)
	// TaskFiles locates a task's files: paths are relative to the task directory.
	TaskFiles(ctx context.Context, account, jobID, taskID string) (FileTarget, error)
}

// FileTarget says where a node's or task's files are: the agent file server
// of the node, and the directory (relative to the node root) that file paths
// of the request are relative to.
type FileTarget struct {
	ServerURL string
	Secret    string
	Dir       string
}
