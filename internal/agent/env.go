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
//     named as in Azure's "Azure Batch runtime environment variables",
//     including AZ_BATCH_APP_PACKAGE_* for the pool's and the task's
//     application packages;
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
	set("AZ_BATCH_CERTIFICATES_DIR", filepath.Join(rootDir, dirCerts))
	set("AZ_BATCH_TASK_DIR", at.dir)
	set("AZ_BATCH_TASK_WORKING_DIR", wd)
	set("AZ_BATCH_TASK_USER", "_azbatch")
	set("AZ_BATCH_TASK_USER_IDENTITY", "PoolNonAdmin")
	if id := at.ident; id != nil { // isolation.go
		set("AZ_BATCH_TASK_USER", id.user)
		set("AZ_BATCH_TASK_USER_IDENTITY", id.label)
		if id.home != "" {
			set("HOME", id.home)
		}
		if id.cred != nil {
			set("USER", id.user)
			set("LOGNAME", id.user)
		}
	}
	if at.as.Kind != protocol.KindStartTask {
		// Azure: "All tasks except start task".
		if at.as.TaskID != "" {
			set("AZ_BATCH_TASK_ID", at.as.TaskID)
		}
		if at.as.JobID != "" {
			set("AZ_BATCH_JOB_ID", at.as.JobID)
		}
	}
	multiInstanceEnv(at, set)
	jobPrepEnv(at, rootDir, set)
	// Pool packages first: a task's own version of an application wins
	// the variable without a version.
	for _, p := range slices.Concat(at.node.Packages, at.as.Packages) {
		dir := filepath.Join(rootDir, filepath.FromSlash(packageDir(p)))
		set(appPackageVar(p.ApplicationID, p.Version), dir)
		if p.IsDefault {
			set(appPackageVar(p.ApplicationID, ""), dir)
		}
	}
	maps.Copy(env, at.as.Env)

	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// appPackageVar names the variable that holds an application package's
// directory, as Azure does on Linux nodes ("Deploy applications to compute
// nodes with Batch application packages"): AZ_BATCH_APP_PACKAGE_<id>_<version>,
// or AZ_BATCH_APP_PACKAGE_<id> for the default version (version ""), with
// '.', '-' and '#' flattened to '_' and the case of the id preserved
// ("blender" 2.7 is AZ_BATCH_APP_PACKAGE_blender_2_7). Kiln flattens any
// other character a shell variable name cannot hold to '_' as well.
func appPackageVar(appID, version string) string {
	name := "AZ_BATCH_APP_PACKAGE_" + flattenVarPart(appID)
	if version != "" {
		name += "_" + flattenVarPart(version)
	}
	return name
}

func flattenVarPart(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
