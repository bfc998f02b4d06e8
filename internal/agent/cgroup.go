package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Task cgroups (docs/task-isolation.md). Where the agent can create cgroup
// v2 directories (it runs as root, or systemd delegated its cgroup), every
// attempt runs in its own cgroup, <agent's cgroup>/kiln-<node key>/a-<attempt
// id>: killing a task kills the whole cgroup, so children that left the
// process group (setsid daemons) die with it, and an agent that starts on a
// root directory kills whatever the cgroups of a previous agent on that root
// still hold. Elsewhere cgroups are off and tasks are process groups only.

// cgroups is the node's task cgroup parent; base "" means cgroups are off.
type cgroups struct {
	base string
	log  *slog.Logger
}

// attemptCgroup creates the cgroup of an attempt and returns its path, or
// "" when cgroups are off or it cannot be made.
func (c *cgroups) attemptCgroup(attemptID string) string {
	if c == nil || c.base == "" {
		return ""
	}
	dir := filepath.Join(c.base, "a-"+safeName(attemptID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.log.Warn("task cgroup not created; the task runs in the agent's cgroup", "err", err)
		return ""
	}
	return dir
}

// safeName keeps a name usable as one path element.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == '.' {
			return '_'
		}
		return r
	}, s)
}
