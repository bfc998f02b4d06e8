package taskrunner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// defaultPath is used when the task environment has no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath resolves the program like execvp would, but with the PATH of the
// task's environment and relative names resolved against the working
// directory. It returns an absolute path (or a path relative to dir made
// absolute), or an error wrapping ErrProgramNotFound.
func lookPath(name, dir string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return "", fmt.Errorf("taskrunner: %w: %s", ErrProgramNotFound, name)
		}
		return p, nil // exec reports a file that is not executable
	}
	pathVar, ok := lookupEnv(env, "PATH")
	if !ok {
		pathVar = defaultPath
	}
	for _, d := range filepath.SplitList(pathVar) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("taskrunner: %w: %s (not on PATH)", ErrProgramNotFound, name)
}

// lookupEnv returns the last value of key in env, as exec does.
func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
