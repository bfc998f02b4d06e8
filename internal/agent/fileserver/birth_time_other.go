//go:build !darwin

package fileserver

import (
	"io/fs"
	"time"
)

// birthTime is not available from the standard library's stat on this
// platform (Linux needs statx); callers fall back to the modification time.
func birthTime(fs.FileInfo) (time.Time, bool) { return time.Time{}, false }
