package agent

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// readNodeFigures reads the node's figures from /proc: CPU times
// (/proc/stat), memory in use (MemTotal - MemAvailable of /proc/meminfo),
// bytes used on the node root's file system, disk I/O of whole block devices
// (/proc/diskstats, sectors of 512 bytes) and network bytes of every
// interface but loopback (/proc/net/dev).
func readNodeFigures(dir string) (protocol.NodeMetrics, cpuTimes, bool) {
	var m protocol.NodeMetrics
	cpu, ok := readCPUTimes()
	if !ok {
		return m, cpu, false
	}
	m.MemoryBytes = readMemUsed()
	var st syscall.Statfs_t
	if dir != "" && syscall.Statfs(dir, &st) == nil {
		m.DiskBytes = int64(st.Blocks-st.Bfree) * int64(st.Bsize)
	}
	m.DiskReadOps, m.DiskReadBytes, m.DiskWriteOps, m.DiskWriteBytes = readDiskStats()
	m.NetworkInBytes, m.NetworkOutBytes = readNetDev()
	return m, cpu, true
}

func readCPUTimes() (cpuTimes, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return cpuTimes{}, false
	}
	var t cpuTimes
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		t.total += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t, true
}

func readMemUsed() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var total, avail int64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "MemTotal:":
			total = v * 1024
		case "MemAvailable:":
			avail = v * 1024
		}
	}
	return max(total-avail, 0)
}

// readDiskStats sums the whole block devices (those in /sys/block, not
// their partitions; loop and ram devices left out).
func readDiskStats() (readOps, readBytes, writeOps, writeBytes int64) {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		name := f[2]
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") {
			continue
		}
		if _, err := os.Stat("/sys/block/" + name); err != nil {
			continue
		}
		n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
		readOps += n(3)
		readBytes += n(5) * 512
		writeOps += n(7)
		writeBytes += n(9) * 512
	}
	return
}

func readNetDev() (in, out int64) {
	b, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, _ := strconv.ParseInt(f[0], 10, 64)
		t, _ := strconv.ParseInt(f[8], 10, 64)
		in += r
		out += t
	}
	return
}
