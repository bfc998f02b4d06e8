// Package protocol defines the agent protocol: the only way a `kiln agent`
// talks to `kiln server`. It is plain JSON over HTTP so that agents on other
// machines speak it exactly as local ones do. docs/agent-protocol.md describes
// the exchange; this file is the source of truth for the message shapes.
//
// Version 1 has two calls, both POST with a JSON body:
//
//	/agent/v1/register  RegisterRequest  -> RegisterResponse
//	/agent/v1/sync      SyncRequest      -> SyncResponse   (long poll)
//
// Every sync after register carries "Authorization: Bearer <NodeToken>".
// Exactly-once rests on three rules:
//  1. every task attempt has a server-chosen AttemptID; the agent runs a given
//     AttemptID at most once for its whole life, however often it is assigned;
//  2. the agent reports events by AttemptID and keeps each event in its outbox
//     until a SyncResponse acknowledges its Seq; the server applies events
//     idempotently and ignores events of attempts it no longer expects;
//  3. each SyncRequest lists every attempt the agent knows (running or
//     finished-but-unacknowledged); the server requeues attempts it delivered
//     before that request (DeliveredIn < request Seq) that the agent does not
//     know, and tells the agent to kill attempts the server does not expect.
package protocol

import "time"

// Version is the protocol version this build speaks.
const Version = 1

// Paths of the agent protocol endpoints.
const (
	PathRegister = "/agent/v1/register"
	PathSync     = "/agent/v1/sync"
)

// RegisterRequest is sent once when an agent starts (and again if the server
// answers a sync with 401, for example after losing the node).
type RegisterRequest struct {
	ProtocolVersion int    `json:"protocolVersion"`
	PoolID          string `json:"poolId"`
	NodeID          string `json:"nodeId"` // chosen by the provider that started the agent (see Join)
	// Token proves the agent may join: the per-node token the provider passed
	// to it, or the pool's join token when Join is set.
	Token    string `json:"token"`
	Hostname string `json:"hostname"`
	IP       string `json:"ip"`
	// FileServerURL is where the agent serves its node files (GET/HEAD/DELETE,
	// see agent docs); the server proxies the node and task file APIs to it.
	FileServerURL string `json:"fileServerUrl"`
	RootDir       string `json:"rootDir"`
	AgentVersion  string `json:"agentVersion"`
	// Known lists attempts the agent already knows (non-empty when an agent
	// re-registers after the server forgot it or restarted).
	Known []string `json:"known,omitempty"`
	// Join says Token is the join token of pool PoolID (a pool whose node
	// provider is "agents", docs/remote-agents.md), not a per-node token:
	// the server admits the agent as a node of that pool while the pool has
	// fewer nodes than its target, else answers Standby. NodeID is then the
	// node id the agent was given before (kept in its root directory), or
	// empty; the server keeps it when it can, so a restarted agent is the
	// same node again.
	Join bool `json:"join,omitempty"`
	// LowPriority (with Join): the agent counts against the pool's
	// targetLowPriorityNodes instead of targetDedicatedNodes.
	LowPriority bool `json:"lowPriority,omitempty"`
}

// RegisterResponse tells the agent its identity and how to behave.
type RegisterResponse struct {
	NodeID    string `json:"nodeId"`
	NodeToken string `json:"nodeToken"`
	// HeartbeatInterval is how long the server holds a sync open at most; the
	// agent must sync at least this often or be marked unusable after a few
	// missed intervals.
	HeartbeatInterval Duration   `json:"heartbeatInterval"`
	Node              NodeConfig `json:"node"`
	// NodeTimeout is how long the server lets the node stay silent before
	// it marks it unusable and requeues its attempts elsewhere. An agent
	// that has not reached the server for (nearly) that long stops its
	// running attempts and forgets them, so that a requeued task never runs
	// twice at once (fencing; 0: the agent never fences).
	NodeTimeout Duration `json:"nodeTimeout,omitempty"`
	// Standby (answer to a Join): the pool has all the nodes its target
	// asks for. The agent is not a node: it runs nothing and registers
	// again after RetryAfter, until it is admitted. NodeID is then the id it
	// will have (the agent keeps it), NodeToken and Node are empty, and
	// Message says why it waits.
	Standby    bool     `json:"standby,omitempty"`
	RetryAfter Duration `json:"retryAfter,omitempty"`
	Message    string   `json:"message,omitempty"`
}

// NodeConfig is what the agent needs to know about its node and pool.
type NodeConfig struct {
	AccountName string `json:"accountName"`
	AccountURL  string `json:"accountUrl"`
	PoolID      string `json:"poolId"`
	IsDedicated bool   `json:"isDedicated"`
	TaskSlots   int    `json:"taskSlots"`
	NodeSecret  string `json:"nodeSecret"` // signs file-server requests from the server
	AffinityID  string `json:"affinityId"`
	// Packages are the pool's application packages: installed when the
	// node joins, before its start task runs.
	Packages []Package `json:"packages,omitempty"`
	// Certificates are the pool's certificates, installed in the node's
	// certs directory before anything runs (certificates.go).
	Certificates []Certificate `json:"certificates,omitempty"`
	// UserAccounts are the pool's named user accounts (userAccounts),
	// created on the node when it joins; tasks name them in
	// UserIdentity.UserName.
	UserAccounts []UserAccount `json:"userAccounts,omitempty"`
}

// SyncRequest is the agent's heartbeat: its events since the last
// acknowledgement and the attempts it knows. The server answers at once when
// it has something for the agent, otherwise after at most WaitMillis.
type SyncRequest struct {
	NodeID string `json:"nodeId"`
	// Seq increases by one per sync the agent sends in its life.
	Seq        int64    `json:"seq"`
	Events     []Event  `json:"events,omitempty"`
	Known      []string `json:"known"`
	WaitMillis int      `json:"waitMillis"`
	// Metrics (optional) sampled on the node.
	Metrics *NodeMetrics `json:"metrics,omitempty"`
	// Applied is the Seq of the last sync whose response the agent received
	// completely and acted on (0: none yet). When it is lower than the Seq
	// of the last response the server sent, that response was lost (the
	// agent cancelled the long poll, or the connection broke) and the server
	// must send its Kill, Clean, Shutdown and Reregister orders again; lost
	// assignments are already covered by rule 3 (Known).
	Applied int64 `json:"applied"`
}

// SyncResponse carries work, kill orders and acknowledgements.
type SyncResponse struct {
	// Ack is the highest event Seq the server has applied; the agent drops
	// every outbox event with Seq <= Ack.
	Ack         int64        `json:"ack"`
	Assignments []Assignment `json:"assignments,omitempty"`
	// Kill lists attempts to stop at once (task terminated, deleted, stale).
	// Killed attempts still report a completion event.
	Kill []string `json:"kill,omitempty"`
	// Clean lists task directories (relative to the node root) to delete
	// (retention time expired, task deleted).
	Clean []string `json:"clean,omitempty"`
	// Shutdown asks the agent to stop all work and exit (node removed).
	Shutdown bool `json:"shutdown,omitempty"`
	// Reregister asks the agent to register again (server lost its state).
	Reregister bool `json:"reregister,omitempty"`
}

// Kinds of assignment.
const (
	KindTask      = "task"
	KindStartTask = "starttask"
	// KindJobPreparation and KindJobRelease run a job's preparation task
	// (before the job's first task on the node) and release task (when the
	// job ends) in their own directories under the job's.
	KindJobPreparation = "jobpreparation"
	KindJobRelease     = "jobrelease"
	// KindSubtask is one instance of a multi-instance task: it downloads
	// ResourceFiles (the common resource files) into Dir itself, not Dir/wd,
	// runs CommandLine (the coordination command), reports EventCoordinated
	// when it exits with code 0 and then keeps whatever it left running in
	// its process group until it is killed. The primary's application
	// command is a KindTask assignment with MultiInstance set.
	KindSubtask = "subtask"
)

// Assignment is one attempt to run a command on the node.
type Assignment struct {
	AttemptID string `json:"attemptId"`
	Kind      string `json:"kind"`
	JobID     string `json:"jobId,omitempty"`
	TaskID    string `json:"taskId,omitempty"`
	// CommandLine is run without a shell, split into arguments as Azure does.
	CommandLine string `json:"commandLine"`
	// Dir is the task directory relative to the node root, for example
	// "workitems/job1/job-1/task1" or "startup". The working directory is
	// Dir + "/wd"; stdout.txt and stderr.txt live in Dir.
	Dir string `json:"dir"`
	// Env holds the task's environmentSettings (and any variable only the
	// server knows); the agent adds every AZ_BATCH_* variable it can derive
	// from NodeConfig and the assignment (node, pool, account, job, task ids
	// and directories).
	Env            map[string]string `json:"env"`
	MaxWallClock   Duration          `json:"maxWallClock,omitempty"` // 0: unlimited
	RequiredSlots  int               `json:"requiredSlots"`
	WaitForSuccess bool              `json:"waitForSuccess,omitempty"`
	// ResourceFiles to download before running (task state preparing).
	ResourceFiles []ResourceFile `json:"resourceFiles,omitempty"`
	// OutputFiles to upload after the process exits, by condition.
	OutputFiles []OutputFile `json:"outputFiles,omitempty"`
	// Packages are the application packages the task needs: the pool's
	// (already installed when the node joined) and the task's own. The agent
	// installs each name+version once per node and sets
	// AZ_BATCH_APP_PACKAGE_* for every one of them.
	Packages []Package `json:"packages,omitempty"`
	// JobPrepDir is the directory of the job's preparation task relative to
	// the node root, for every attempt of a job that has one except the
	// preparation task itself: the agent sets AZ_BATCH_JOB_PREP_DIR and
	// AZ_BATCH_JOB_PREP_WORKING_DIR from it.
	JobPrepDir string `json:"jobPrepDir,omitempty"`
	// MultiInstance is set on every attempt of a multi-instance task: the
	// subtasks (KindSubtask) and the primary's application command.
	MultiInstance *MultiInstance `json:"multiInstance,omitempty"`
	// User is the identity the task runs as (Azure's userIdentity); nil is
	// Azure's default on Linux, the pool's non-admin auto-user. Agents that
	// do not run as root run every task as their own user
	// (docs/task-isolation.md).
	User *UserIdentity `json:"user,omitempty"`
	// DeliveredIn is the Seq of the sync request whose response carried this
	// assignment; set by the server, echoed for debugging.
	DeliveredIn int64 `json:"deliveredIn"`
}

// MultiInstance places an attempt in its multi-instance task: the agent sets
// AZ_BATCH_HOST_LIST, AZ_BATCH_NODE_LIST, AZ_BATCH_MASTER_NODE,
// AZ_BATCH_IS_CURRENT_NODE_MASTER and AZ_BATCH_TASK_SHARED_DIR (the task
// directory, where the common resource files are) from it.
type MultiInstance struct {
	// SubtaskID is the instance: 0 on the master node (the primary), 1 to
	// N-1 on the others.
	SubtaskID int `json:"subtaskId"`
	// Hosts are the IP addresses of the task's N nodes, master first.
	Hosts []string `json:"hosts"`
	// Master is the master node's IP address and a port reserved for Kiln
	// (its agent's file server), as in Azure's AZ_BATCH_MASTER_NODE.
	Master string `json:"master"`
}

// ResourceFile is a file, or the blobs of a container, to fetch into the
// task's working directory. Exactly one of URL and ContainerURL is set.
type ResourceFile struct {
	// URL (Azure's httpUrl) is fetched with a plain GET to FilePath.
	URL string `json:"url,omitempty"`
	// ContainerURL is an Azure Blob container URL with a SAS token that
	// grants read and list: the task's storageContainerUrl as given, or a
	// Kiln storage container (autoStorageContainerName) the server signed.
	// Every blob whose name starts with BlobPrefix is downloaded to
	// FilePath/<blob name> (FilePath may be empty: the working directory).
	ContainerURL string `json:"containerUrl,omitempty"`
	BlobPrefix   string `json:"blobPrefix,omitempty"`
	FilePath     string `json:"filePath"`
	FileMode     string `json:"fileMode,omitempty"`
}

// Upload conditions of output files (Azure's OutputFileUploadCondition).
const (
	UploadOnSuccess    = "tasksuccess"
	UploadOnFailure    = "taskfailure"
	UploadOnCompletion = "taskcompletion"
)

// OutputFile is Azure's OutputFile with its destination flattened: files of
// the task matching FilePattern are uploaded to the Azure Blob container
// ContainerURL (with a SAS token granting write; Kiln storage speaks the same
// protocol) when UploadCondition holds.
type OutputFile struct {
	// FilePattern is relative to the working directory (Azure's glob rules:
	// *, ?, **, [abc]; no "..").
	FilePattern  string `json:"filePattern"`
	ContainerURL string `json:"containerUrl"`
	// Path is the blob name for a pattern without wildcards, otherwise the
	// virtual directory prepended to each matched file's relative path.
	Path            string            `json:"path,omitempty"`
	UploadCondition string            `json:"uploadCondition"`
	UploadHeaders   map[string]string `json:"uploadHeaders,omitempty"`
}

// Package is one application package version to install on the node.
type Package struct {
	ApplicationID string `json:"applicationId"`
	Version       string `json:"version"`
	// IsDefault: Version is the application's default version, so the
	// agent also sets AZ_BATCH_APP_PACKAGE_<applicationId>.
	IsDefault bool `json:"isDefault,omitempty"`
	// URL is a signed URL of the package's zip file (GET).
	URL string `json:"url"`
	// Revision identifies the uploaded content: a version uploaded again
	// gets a new revision, and nodes install it again instead of keeping
	// the copy they have.
	Revision string `json:"revision,omitempty"`
	// Error, when set, says why the server could not resolve the package
	// (no such application or version): the attempt fails with
	// ApplicationPackageError without running.
	Error string `json:"error,omitempty"`
}

// Event kinds.
const (
	EventStarted   = "started"   // process started (task state running)
	EventCompleted = "completed" // process finished, or could not start
	// EventCoordinated: a KindSubtask's coordination command exited with
	// code 0 (ExitCode is set). The attempt goes on, holding what the
	// command left running, until it is killed; its completed event follows.
	EventCoordinated = "coordinated"
)

// Event reports progress of one attempt.
type Event struct {
	Seq       int64     `json:"seq"`
	AttemptID string    `json:"attemptId"`
	Kind      string    `json:"kind"`
	Time      time.Time `json:"time"`
	// For completed events:
	StartTime time.Time    `json:"startTime,omitempty"`
	ExitCode  *int         `json:"exitCode,omitempty"`
	Failure   *FailureInfo `json:"failure,omitempty"`
	TimedOut  bool         `json:"timedOut,omitempty"`
	Killed    bool         `json:"killed,omitempty"`
	// Stats (optional) is what the attempt's process consumed. Agents
	// before it existed send none; the server then counts the wall clock
	// from StartTime to Time and nothing else.
	Stats *AttemptStats `json:"stats,omitempty"`
}

// AttemptStats is the resource usage of one attempt's process, measured
// when it exited: CPU from its rusage, I/O from the kernel's per-process
// accounting, both including the descendants it waited for (see
// taskrunner.Usage for exactly what is counted).
type AttemptStats struct {
	// WallClock is how long the process ran (start to exit), without the
	// downloads before and uploads after it.
	WallClock Duration `json:"wallClock"`
	UserCPU   Duration `json:"userCpu"`
	KernelCPU Duration `json:"kernelCpu"`
	// ReadOps and WriteOps count read and write system calls; ReadBytes
	// and WriteBytes are bytes read from and written to storage.
	ReadOps    int64 `json:"readOps"`
	WriteOps   int64 `json:"writeOps"`
	ReadBytes  int64 `json:"readBytes"`
	WriteBytes int64 `json:"writeBytes"`
}

// FailureInfo mirrors Azure's TaskFailureInformation.
type FailureInfo struct {
	Category string `json:"category"` // usererror | servererror
	Code     string `json:"code"`
	Message  string `json:"message"`
	// Phase says when the failure happened, for exit conditions:
	// PhasePreProcessing (resource files, application packages, could not
	// start), PhaseFileUpload (output files), or "" (the process itself).
	Phase string `json:"phase,omitempty"`
}

// Failure phases.
const (
	PhasePreProcessing = "preprocessing"
	PhaseFileUpload    = "fileupload"
)

// NodeMetrics are resource figures sampled on the node, the inputs of the
// pool metrics autoscale formulas read. CPUPercent, MemoryBytes and
// DiskBytes are gauges (CPU busy since the previous sample, memory in use,
// bytes used on the file system of the node root); the other fields are
// counters since the node booted, which the server turns into amounts per
// sample period.
type NodeMetrics struct {
	CPUPercent  float64 `json:"cpuPercent"`
	MemoryBytes int64   `json:"memoryBytes"`
	DiskBytes   int64   `json:"diskBytes"`
	// Block devices (whole disks), from /proc/diskstats on Linux.
	DiskReadBytes  int64 `json:"diskReadBytes,omitempty"`
	DiskWriteBytes int64 `json:"diskWriteBytes,omitempty"`
	DiskReadOps    int64 `json:"diskReadOps,omitempty"`
	DiskWriteOps   int64 `json:"diskWriteOps,omitempty"`
	// Network interfaces other than loopback, from /proc/net/dev on Linux.
	NetworkInBytes  int64 `json:"networkInBytes,omitempty"`
	NetworkOutBytes int64 `json:"networkOutBytes,omitempty"`
}

// Duration is a time.Duration that marshals as a Go duration string.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// File server of the agent: the server reaches node files through these
// paths on FileServerURL, signing each request with NodeSecret.
//
//	GET    /files/{path}?recursive=true   list a directory (JSON []FileInfo) or read a file (supports Range)
//	HEAD   /files/{path}                  properties of a file
//	DELETE /files/{path}?recursive=true   delete a file or directory
//
// {path} is relative to the node root, slash separated, percent-encoded.
// Header "X-Kiln-Signature" = hex(HMAC-SHA256(NodeSecret, METHOD + "\n" + escapedPath + "\n" + X-Kiln-Date)),
// "X-Kiln-Date" RFC 3339, accepted within 5 minutes.
type FileInfo struct {
	Path         string    `json:"path"` // relative to the listed directory
	IsDirectory  bool      `json:"isDirectory"`
	Size         int64     `json:"size"`
	CreationTime time.Time `json:"creationTime"`
	LastModified time.Time `json:"lastModified"`
	FileMode     string    `json:"fileMode"`
}
