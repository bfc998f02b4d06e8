package taskrunner

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// ioUsage reads the I/O accounting of process pid, which must have exited
// and not yet been reaped (see Usage). Missing or unreadable counters leave
// u unchanged.
func ioUsage(pid int, u *Usage) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return
	}
	parseProcIO(b, u)
}

// parseProcIO fills u from the text of /proc/<pid>/io.
func parseProcIO(b []byte, u *Usage) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, val, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil {
			continue
		}
		switch string(name) {
		case "syscr":
			u.ReadOps = n
		case "syscw":
			u.WriteOps = n
		case "read_bytes":
			u.ReadBytes = n
		case "write_bytes":
			u.WriteBytes = n
		}
	}
}
