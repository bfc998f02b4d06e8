package agent

import (
	"bufio"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// newCgroups finds the cgroup v2 hierarchy and the agent's own cgroup in it
// and creates the node's parent cgroup there; cgroups are off (base "")
// when there is no cgroup v2 or the agent may not create cgroups in it.
// The hybrid layout (v1 controllers, v2 at /sys/fs/cgroup/unified) works:
// the v2 cgroups then only group and kill, without limits.
func newCgroups(key string, log *slog.Logger) *cgroups {
	c := &cgroups{log: log}
	mount := cgroup2Mount()
	own := ownCgroup2()
	if mount == "" || own == "" {
		log.Info("cgroup v2 not available: tasks are process groups only")
		return c
	}
	base := filepath.Join(mount, filepath.FromSlash(own), "kiln-"+key)
	if err := os.MkdirAll(base, 0o755); err != nil {
		log.Info("cannot create task cgroups: tasks are process groups only", "cgroup", base, "err", err)
		return c
	}
	c.base = base
	// Agents killed with SIGKILL leave their (empty) node cgroups behind:
	// remove the empty ones (rmdir refuses a cgroup that has children).
	if ents, err := os.ReadDir(filepath.Dir(base)); err == nil {
		for _, e := range ents {
			if p := filepath.Join(filepath.Dir(base), e.Name()); e.IsDir() && strings.HasPrefix(e.Name(), "kiln-") && p != base {
				_ = syscall.Rmdir(p)
			}
		}
	}
	return c
}

// cgroup2Mount is where the cgroup2 file system is mounted, or "".
func cgroup2Mount() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint options ... - fstype source super
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4]
		}
	}
	return ""
}

// ownCgroup2 is the agent's cgroup in the v2 hierarchy ("/" at its root).
func ownCgroup2() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok && strings.HasPrefix(p, "/") {
			return strings.TrimSuffix(p, " (deleted)")
		}
	}
	return ""
}

// kill kills every process of a cgroup (cgroup.kill where the kernel has
// it, 5.14 and later; else freeze, SIGKILL each, thaw, until it is empty)
// and waits until it is empty.
func (c *cgroups) kill(dir string) {
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		if errors.Is(err, os.ErrNotExist) && !exists(dir) {
			return
		}
		freeze := filepath.Join(dir, "cgroup.freeze")
		frozen := os.WriteFile(freeze, []byte("1"), 0) == nil
		for range 100 {
			pids := cgroupPids(dir)
			if len(pids) == 0 {
				break
			}
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			if frozen {
				_ = os.WriteFile(freeze, []byte("0"), 0) // frozen processes die once thawed
				time.Sleep(5 * time.Millisecond)
				_ = os.WriteFile(freeze, []byte("1"), 0)
			} else {
				time.Sleep(5 * time.Millisecond)
			}
		}
		if frozen {
			_ = os.WriteFile(freeze, []byte("0"), 0)
		}
	}
	for i := 0; i < 1000 && len(cgroupPids(dir)) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// remove kills a cgroup's processes and removes it.
func (c *cgroups) remove(dir string) {
	if dir == "" {
		return
	}
	c.kill(dir)
	var err error
	for range 100 {
		if err = syscall.Rmdir(dir); err == nil || errors.Is(err, syscall.ENOENT) {
			return
		}
		time.Sleep(10 * time.Millisecond) // EBUSY until the last exit is accounted
	}
	c.log.Warn("task cgroup not removed", "cgroup", dir, "err", err)
}

// cleanLeftovers kills and removes the cgroups of attempts a previous agent
// on this root left behind, and returns how many held processes.
func (c *cgroups) cleanLeftovers() int {
	if c == nil || c.base == "" {
		return 0
	}
	ents, err := os.ReadDir(c.base)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "a-") {
			continue
		}
		dir := filepath.Join(c.base, e.Name())
		if len(cgroupPids(dir)) > 0 {
			n++
		}
		c.remove(dir)
	}
	return n
}

func cgroupPids(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// populated reports whether a cgroup holds processes.
func (c *cgroups) populated(dir string) bool { return dir != "" && len(cgroupPids(dir)) > 0 }

// limit applies the pool's share to an attempt's cgroup where the cpu
// controller is delegated: cpu.weight 100 per task slot the task requires
// (taskSlotsPerNode and requiredSlots are the only resource terms of an
// Azure pool; memory and pids stay unlimited). Without the controller (the
// hybrid layout) it does nothing.
func (c *cgroups) limit(dir string, slots int) {
	if dir == "" {
		return
	}
	b, err := os.ReadFile(filepath.Join(c.base, "cgroup.controllers"))
	if err != nil || !slices.Contains(strings.Fields(string(b)), "cpu") {
		return
	}
	ctl := filepath.Join(c.base, "cgroup.subtree_control")
	if sc, _ := os.ReadFile(ctl); !slices.Contains(strings.Fields(string(sc)), "cpu") {
		if err := os.WriteFile(ctl, []byte("+cpu"), 0); err != nil {
			return
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "cpu.weight"), []byte(strconv.Itoa(min(100*max(slots, 1), 10000))), 0)
}
