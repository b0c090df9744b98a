package store

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// shmDir is the memory file system scratchDir prefers (a variable for
// tests).
var shmDir = "/dev/shm"

// scratchDir creates a temporary directory for files of need bytes: in
// shmDir (memory) when it has room, else in the temporary directory.
func scratchDir(need int64) (string, error) {
	base := os.TempDir()
	var st unix.Statfs_t
	if runtime.GOOS == "linux" && unix.Statfs(shmDir, &st) == nil && int64(st.Bavail)*int64(st.Bsize) > 2*need {
		base = shmDir
	}
	return os.MkdirTemp(base, "lmood-session-")
}
