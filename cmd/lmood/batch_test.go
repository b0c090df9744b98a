package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lmood/lmood/internal/testutil"
)

// tinyCorpus writes n JSON Lines prompts (ids: numbers and strings, one
// empty text that becomes an error record) and returns the file.
func tinyCorpus(t *testing.T, dir string, n int) string {
	t.Helper()
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		rec := map[string]any{"id": i, "text": fmt.Sprintf("prompt %d: the quick brown fox jumps over lazy dog %d", i, i*i)}
		if i%7 == 3 {
			rec["id"] = fmt.Sprintf("doc-%d", i)
		}
		if i == n-10 {
			rec["text"] = "" // an error record, kept like any other
		}
		line, _ := json.Marshal(rec)
		b.Write(append(line, '\n'))
	}
	path := filepath.Join(dir, "corpus.jsonl")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lmoodCLI runs the real binary with env and returns stdout, stderr and
// the exit code.
func lmoodCLI(t *testing.T, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// sortedLines returns the lines of s sorted (records start with their id,
// so this sorts them by id).
func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return lines
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestScoreResumeAfterKill runs the real lmood binary on a synthetic
// model: a plain `score --json` run, a resumable run killed with SIGKILL
// part way and then resumed (after a half-written line is appended, as a
// kill in the middle of a write would leave), shards whose union is the
// whole, and a rerun with other options that must be refused. All give
// the same records, byte for byte once sorted by id.
func TestScoreResumeAfterKill(t *testing.T) {
	env := testutil.SubprocessEnv(t)
	bin := testutil.BuildCommand(t, "github.com/lmood/lmood/cmd/lmood")
	dir := t.TempDir()
	model := testutil.WriteTiny(t, testutil.DefaultTiny())
	const n = 300
	in := tinyCorpus(t, dir, n)
	common := []string{"score", "-m", model, "-f", in, "--json", "-k", "32", "--threads", "1"}

	plain, stderr, code := lmoodCLI(t, bin, env, append(common, "-q")...)
	if code != 1 || !strings.Contains(stderr, "1 of 300 prompts failed") {
		t.Fatalf("plain run: exit %d, stderr %s", code, stderr)
	}
	want := sortedLines(plain)
	if len(want) != n {
		t.Fatalf("plain run wrote %d records, want %d", len(want), n)
	}

	// A resumable run killed after some records.
	out := filepath.Join(dir, "out.jsonl")
	cmd := exec.Command(bin, append(common, "-o", out, "--sync-every", "1")...)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(out)
		if bytes.Count(b, []byte("\n")) >= 20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the resumable run wrote no 20 records in 2 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	got := readFile(t, out)
	killedAt := strings.Count(got, "\n")
	if killedAt >= n {
		t.Fatalf("the run finished (%d records) before it was killed: make the corpus longer", killedAt)
	}
	// What a kill in the middle of a write leaves: half a record.
	last := want[len(want)-1]
	if !strings.Contains(got, last) {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(last[:len(last)/2])
		f.Close()
	}

	_, stderr, code = lmoodCLI(t, bin, env, append(common, "-o", out)...)
	if code > 1 || !strings.Contains(stderr, "removed a partial last line") ||
		!strings.Contains(stderr, fmt.Sprintf("%d had records, %d scored", killedAt, n-killedAt)) {
		t.Fatalf("resumed run: exit %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stderr, "prompts/s, ETA") {
		t.Errorf("no progress line with rate and ETA on a non-terminal stderr:\n%s", stderr)
	}
	if resumed := sortedLines(readFile(t, out)); !slices.Equal(resumed, want) {
		for i := range min(len(resumed), len(want)) {
			if resumed[i] != want[i] {
				t.Logf("first difference at sorted line %d:\n resumed %s\n plain   %s", i, resumed[i], want[i])
				break
			}
		}
		t.Fatalf("killed and resumed run differs from the plain run (%d vs %d records)", len(resumed), len(want))
	}
	t.Logf("killed after %d of %d records; resumed run matches the plain run", killedAt, n)

	// Once complete, a rerun scores nothing.
	_, stderr, _ = lmoodCLI(t, bin, env, append(common, "-o", out)...)
	if !strings.Contains(stderr, fmt.Sprintf("%d had records, 0 scored", n)) {
		t.Errorf("rerun of a complete output: %s", stderr)
	}

	// Other options never mix into the file.
	before := readFile(t, out)
	_, stderr, code = lmoodCLI(t, bin, env, "score", "-m", model, "-f", in, "--json", "-k", "8", "-o", out)
	if code != 2 || !strings.Contains(stderr, "another setup") {
		t.Errorf("other options: exit %d, stderr %s", code, stderr)
	}
	if readFile(t, out) != before {
		t.Error("a refused run changed the output")
	}

	// Shards: disjoint, and their union is the whole.
	var union []string
	for i := 0; i < 3; i++ {
		part := filepath.Join(dir, fmt.Sprintf("shard%d.jsonl", i))
		lmoodCLI(t, bin, env, append(common, "-q", "-o", part, "--shard", fmt.Sprintf("%d/3", i))...)
		lines := sortedLines(readFile(t, part))
		if len(lines) == 0 || len(lines) == n {
			t.Errorf("shard %d/3 holds %d of %d records", i, len(lines), n)
		}
		union = append(union, lines...)
	}
	slices.Sort(union)
	if !slices.Equal(union, want) {
		t.Errorf("the union of 3 shards (%d records) differs from the whole (%d)", len(union), len(want))
	}
}

// TestScoreOutputFlags checks the corpus flags' usage errors.
func TestScoreOutputFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"score", "-f", "x.txt", "-o", "o.jsonl"}, "add --json"},
		{[]string{"score", "--json", "-o", "o.jsonl", "a prompt"}, "not as arguments"},
		{[]string{"score", "--json", "--shard", "3/3", "a"}, "--shard"},
		{[]string{"score", "--json", "--input-format", "csv", "-f", "x"}, "--input-format"},
	} {
		root := newRootCmd()
		root.SetArgs(tc.args)
		root.SetOut(new(bytes.Buffer))
		err := root.Execute()
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}
