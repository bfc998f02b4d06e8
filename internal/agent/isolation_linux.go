package agent

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// allCaps is every capability the agent holds (its permitted set, within
// the bounding set: a container may have fewer than the kernel knows): what
// an admin user account's tasks keep as ambient capabilities,
// root-equivalent.
func allCaps() []uintptr {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	var prm, bnd uint64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapPrm:"); ok {
			prm, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bnd, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	var caps []uintptr
	for c := range 64 {
		if prm&bnd&(1<<c) != 0 {
			caps = append(caps, uintptr(c))
		}
	}
	return caps
}

// killGroupOf kills every process of process group pgid that runs as uid
// (the uid check keeps a reused group id from killing strangers). It
// reports whether there was any.
func killGroupOf(pgid, uid int) bool {
	found := false
	for range 5 {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return found
		}
		killed := false
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if procGroup(pid) != pgid || procUID(pid) != uid {
				continue
			}
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed, found = true, true
			}
		}
		if !killed {
			break
		}
	}
	return found
}

// procGroup is the process group of pid, or -1.
func procGroup(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:])) // state ppid pgrp ...
	if len(f) < 3 {
		return -1
	}
	g, err := strconv.Atoi(f[2])
	if err != nil {
		return -1
	}
	return g
}

// procUID is the real uid of pid, or -1.
func procUID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					return n
				}
			}
		}
	}
	return -1
}

func execOutput(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).Output()
}
