package agent

import (
	"fmt"
	"os"
	"path/filepath"
)

// Node directories, as on an Azure Batch Linux node under
// AZ_BATCH_NODE_ROOT_DIR.
const (
	dirApplications = "applications"
	dirCerts        = "certs"
	dirMounts       = "fsmounts"
	dirShared       = "shared"
	dirStartup      = "startup"
	dirTasks        = "tasks"
	dirVolatile     = "volatile"
	dirWorkItems    = "workitems"
)

func createLayout(root string) error {
	for _, d := range []string{dirApplications, dirCerts, dirMounts, dirShared, dirStartup, dirTasks, dirVolatile, dirWorkItems} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("agent: create node layout: %w", err)
		}
	}
	return nil
}

// localDir validates a directory the server named relative to the node root
// (slash separated) and returns it in OS form. It refuses absolute paths,
// paths that leave the root, and the root itself.
func localDir(rel string) (string, error) {
	name := filepath.Clean(filepath.FromSlash(rel))
	if rel == "" || !filepath.IsLocal(name) || name == "." {
		return "", fmt.Errorf("directory %q is not inside the node root", rel)
	}
	return name, nil
}

// overlaps reports whether one of the absolute paths contains the other.
func overlaps(a, b string) bool {
	return a == b || within(a, b) || within(b, a)
}

func within(child, parent string) bool {
	rel, err := filepath.Rel(parent, child)
	return err == nil && filepath.IsLocal(rel)
}
