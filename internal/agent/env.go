package agent

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// defaultPath is the task PATH when the agent itself has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// taskEnv builds a task's complete environment, in increasing precedence:
//   - PATH (and HOME, if set) from the agent's own environment;
//   - the AZ_BATCH_* variables derived from the node and the assignment,
//     named as in Azure's "Azure Batch runtime environment variables";
//   - Assignment.Env (environmentSettings and anything only the server
//     knows), which may override any of the above.
func taskEnv(at *attempt, poolID, rootDir, wd string) []string {
	env := map[string]string{"PATH": defaultPath}
	if v, ok := os.LookupEnv("PATH"); ok && v != "" {
		env["PATH"] = v
	}
	if v, ok := os.LookupEnv("HOME"); ok {
		env["HOME"] = v
	}
	if at.node.PoolID != "" {
		poolID = at.node.PoolID
	}
	set := func(k, v string) { env[k] = v }
	set("AZ_BATCH_ACCOUNT_NAME", at.node.AccountName)
	set("AZ_BATCH_ACCOUNT_URL", at.node.AccountURL)
	set("AZ_BATCH_POOL_ID", poolID)
	set("AZ_BATCH_NODE_ID", at.nodeID)
	set("AZ_BATCH_NODE_IS_DEDICATED", strconv.FormatBool(at.node.IsDedicated))
	set("AZ_BATCH_NODE_ROOT_DIR", rootDir)
	set("AZ_BATCH_NODE_SHARED_DIR", filepath.Join(rootDir, dirShared))
	set("AZ_BATCH_NODE_STARTUP_DIR", filepath.Join(rootDir, dirStartup))
	set("AZ_BATCH_NODE_MOUNTS_DIR", filepath.Join(rootDir, dirMounts))
	set("AZ_BATCH_TASK_DIR", at.dir)
	set("AZ_BATCH_TASK_WORKING_DIR", wd)
	set("AZ_BATCH_TASK_USER", "_azbatch")
	set("AZ_BATCH_TASK_USER_IDENTITY", "PoolNonAdmin")
	if at.as.Kind != protocol.KindStartTask {
		// Azure: "All tasks except start task".
		if at.as.TaskID != "" {
			set("AZ_BATCH_TASK_ID", at.as.TaskID)
		}
		if at.as.JobID != "" {
			set("AZ_BATCH_JOB_ID", at.as.JobID)
		}
	}
	maps.Copy(env, at.as.Env)

	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}
