package report

import (
	"flag"
	"regexp"
	"testing"

	"github.com/lmood/lmood/internal/testutil/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// checkGolden compares got byte for byte with testdata/<name>.golden, or
// rewrites the file when the test runs with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name, got, *update)
}

// sgr matches the escape sequences this package writes.
var sgr = regexp.MustCompile("\x1b\\[[0-9;]*m")

// stripSGR removes this package's colour codes.
func stripSGR(s string) string { return sgr.ReplaceAllString(s, "") }
