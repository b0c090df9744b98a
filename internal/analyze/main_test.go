package analyze_test

import (
	"os"
	"testing"

	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}
