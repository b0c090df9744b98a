package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// shmDir is the memory file system scratchDir prefers (a variable for
// tests).
var shmDir = "/dev/shm"

// scratchPrefix starts the names of scratch directories, followed by the
// creating process's ID.
const scratchPrefix = "lmood-session-"

// scratchDir creates a temporary directory for files of need bytes: in
// shmDir (memory) when it has room, else in the temporary directory. It
// first removes the scratch directories there of processes that no longer
// run (a process killed while opening a session leaves its directory,
// which in shmDir holds memory).
func scratchDir(need int64) (string, error) {
	base := os.TempDir()
	var st unix.Statfs_t
	if runtime.GOOS == "linux" && unix.Statfs(shmDir, &st) == nil && int64(st.Bavail)*int64(st.Bsize) > 2*need {
		base = shmDir
	}
	removeOrphans(base)
	return os.MkdirTemp(base, fmt.Sprintf("%s%d-", scratchPrefix, os.Getpid()))
}

// removeOrphans removes the scratch directories in dir whose process has
// ended.
func removeOrphans(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), scratchPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid <= 0 {
			continue
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
