package fileserver

import (
	"io/fs"
	"strconv"
	"syscall"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// fileInfo converts fi to the wire shape; p is the path to report.
func fileInfo(p string, fi fs.FileInfo) protocol.FileInfo {
	return protocol.FileInfo{
		Path:         p,
		IsDirectory:  fi.IsDir(),
		Size:         size(fi),
		CreationTime: creationTime(fi).UTC(),
		LastModified: fi.ModTime().UTC(),
		FileMode:     fileMode(fi),
	}
}

func size(fi fs.FileInfo) int64 {
	if fi.IsDir() {
		return 0
	}
	return fi.Size()
}

// fileMode formats the Unix st_mode (type and permission bits) in octal with
// a leading zero, for example "0100644" for a regular file and "040755" for a
// directory.
func fileMode(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return "0" + strconv.FormatUint(uint64(st.Mode), 8)
	}
	m := fi.Mode()
	var bits uint32
	switch {
	case m.IsDir():
		bits = 0o040000
	case m&fs.ModeSymlink != 0:
		bits = 0o120000
	case m.IsRegular():
		bits = 0o100000
	}
	bits |= uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return "0" + strconv.FormatUint(uint64(bits), 8)
}

// creationTime returns the birth time where the stat data has it, else the
// modification time.
func creationTime(fi fs.FileInfo) time.Time {
	if t, ok := birthTime(fi); ok {
		return t
	}
	return fi.ModTime()
}
