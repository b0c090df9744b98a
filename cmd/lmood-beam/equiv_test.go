package main

import (
	"bytes"
	"context"
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

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"

	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) {
	beam.Init()
	testutil.Main(m)
}

// equivCorpus writes n JSON Lines prompts: mostly short, every 20th long
// (so a bundle is slow enough for Prism to split it over workers), ids as
// numbers and strings, one empty text (an error record).
func equivCorpus(t *testing.T, dir string, n int) string {
	t.Helper()
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		text := fmt.Sprintf("prompt %d: the quick brown fox jumps over the lazy dog %d times", i, i*i)
		if i%20 == 7 {
			words := make([]string, 40)
			for j := range words {
				words[j] = fmt.Sprintf("w%d", i+j)
			}
			text = strings.Join(words, " ")
		}
		rec := map[string]any{"id": i, "text": text}
		if i%9 == 4 {
			rec["id"] = fmt.Sprintf("doc-%03d", i)
		}
		if i == n-3 {
			rec["text"] = " "
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

func sorted(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return lines
}

func runCLI(t *testing.T, bin string, env []string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 { // 1: the error record
			t.Fatalf("lmood %v: %v\n%s", args, err, stderr.String())
		}
	}
	return stdout.String(), stderr.String()
}

// TestEquivalence scores one corpus three ways on a synthetic model — a
// plain `lmood score --json` run, a resumable `score -o` run killed with
// SIGKILL and resumed, and the Beam pipeline on Prism with several
// workers — and requires the same records, byte for byte once sorted by
// id, plus a summary that agrees with them.
func TestEquivalence(t *testing.T) {
	env := testutil.SubprocessEnv(t)
	lib := runtime.DefaultLibPath()
	bin := testutil.BuildCommand(t, "github.com/lmood/lmood/cmd/lmood")
	dir := t.TempDir()
	model := testutil.WriteTiny(t, testutil.DefaultTiny())
	const n, k = 240, "96"
	in := equivCorpus(t, dir, n)
	args := []string{"score", "-m", model, "-f", in, "--json", "-k", k, "--seed", "3", "--threads", "1", "-q"}

	start := time.Now()
	plain, _ := runCLI(t, bin, env, args...)
	want := sorted(plain)
	if len(want) != n {
		t.Fatalf("plain run: %d records, want %d", len(want), n)
	}
	t.Logf("plain score --json: %d records in %v", n, time.Since(start).Round(time.Millisecond))

	// Resumable, killed, resumed.
	out := filepath.Join(dir, "resumed.jsonl")
	cmd := exec.Command(bin, append(args, "-o", out, "--sync-every", "1")...)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(out)
		if bytes.Count(b, []byte("\n")) >= 30 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no 30 records in 2 minutes")
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	b, _ := os.ReadFile(out)
	if c := bytes.Count(b, []byte("\n")); c >= n {
		t.Fatalf("the run finished before it was killed (%d records)", c)
	}
	runCLI(t, bin, env, append(args, "-o", out)...)
	b, _ = os.ReadFile(out)
	if got := sorted(string(b)); !slices.Equal(got, want) {
		t.Errorf("killed and resumed run: %d records differ from the plain run's %d", len(got), len(want))
	}

	// Beam on Prism, in this process.
	c := config{
		Input: in, Output: filepath.Join(dir, "beam.jsonl"), Summary: filepath.Join(dir, "summary.json"),
		Format: "auto", Model: model, StoreDir: filepath.Join(dir, "beam-models"), ORTLib: lib,
		Layer: -1, Threads: 1, TopN: 5, Options: core.DefaultOptions(),
	}
	c.Options.Samples, c.Options.Seed = 96, 3
	// Prism splits a bundle whose input made no progress between two of
	// its progress ticks (100 ms at first). A long prompt alone takes about
	// that long on the tiny model, so whether a split happened depended on
	// the machine's speed and load: make the long prompts take 300 ms.
	beforeScore = func(p core.Prompt) {
		if strings.HasPrefix(p.Text, "w") {
			time.Sleep(300 * time.Millisecond)
		}
	}
	defer func() { beforeScore = nil }()
	opened := analyzersOpened.Load()
	start = time.Now()
	p, err := buildPipeline(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prism.Execute(context.Background(), p); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	workers := analyzersOpened.Load() - opened
	t.Logf("Beam on Prism: %d records in %v, %d analyzers (workers)", n, time.Since(start).Round(time.Millisecond), workers)
	b, err = os.ReadFile(c.Output)
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(string(b)); !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("first difference:\nbeam  %s\nplain %s", got[i], want[i])
				break
			}
		}
		t.Fatalf("Beam records (%d) differ from the plain run's (%d)", len(got), len(want))
	}
	if workers < 2 {
		t.Errorf("Prism ran the scoring on %d worker(s); want several (long prompts should make it split bundles)", workers)
	}

	// The summary agrees with the records.
	b, err = os.ReadFile(c.Summary)
	if err != nil {
		t.Fatal(err)
	}
	var sum core.CorpusReport
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, b)
	}
	best, errs := -1e9, 0
	for _, l := range want {
		var r core.ScoreRecord
		json.Unmarshal([]byte(l), &r)
		if r.Error != "" {
			errs++
			continue
		}
		best = max(best, r.OOD)
	}
	if sum.Records != n || sum.Errors != errs || errs != 1 || len(sum.Layers) != 1 || sum.Layers[0].Count != n-1 ||
		len(sum.Top) != 5 || sum.Top[0].OOD != best || sum.Layers[0].Max != best {
		t.Errorf("summary %+v disagrees with the records (%d errors, best OOD %v)", sum, errs, best)
	}
}

// TestMalformedLinesBecomeRecords checks that lines the pipeline cannot
// parse become error records and the pipeline still succeeds.
func TestMalformedLinesBecomeRecords(t *testing.T) {
	testutil.SubprocessEnv(t) // skips without onnxruntime
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte("{\"id\": 1, \"text\": \"fine\"}\nnot json\n{\"id\": 2}\n\n"), 0o644)
	c := config{
		Input: in, Output: filepath.Join(dir, "out.jsonl"), Format: "jsonl",
		Model: testutil.WriteTiny(t, testutil.DefaultTiny()), StoreDir: filepath.Join(dir, "models"),
		ORTLib: runtime.DefaultLibPath(), Layer: -1, Threads: 1, Options: core.DefaultOptions(),
	}
	c.Options.Samples = 4
	p, err := buildPipeline(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prism.Execute(context.Background(), p); err != nil {
		t.Fatalf("pipeline failed: %v", err)
	}
	b, _ := os.ReadFile(c.Output)
	errs := map[string]string{}
	for _, l := range sorted(string(b)) {
		var r core.ScoreRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		errs[r.Prompt] = r.Error
	}
	if len(errs) != 3 || errs["fine"] != "" || !strings.Contains(errs["not json"], "not a JSON object") ||
		!strings.Contains(errs[`{"id": 2}`], `no "text"`) {
		t.Errorf("records: %v", errs)
	}
}

// TestConfigCheck checks that bad flags are refused before a pipeline is
// built, with the core's option validation.
func TestConfigCheck(t *testing.T) {
	ok := config{Input: "in", Output: "out", Layer: -1, Options: core.DefaultOptions()}
	for _, tc := range []struct {
		name string
		edit func(*config)
		want string
	}{
		{"no input", func(c *config) { c.Input = "" }, "--input"},
		{"samples", func(c *config) { c.Options.Samples = 0 }, "samples"},
		{"noise", func(c *config) { c.Options.Noise = "loud" }, "noise"},
		{"layer", func(c *config) { c.Layer = -2 }, "layer"},
		{"format", func(c *config) { c.Format = "csv" }, "input-format"},
	} {
		c := ok
		tc.edit(&c)
		if _, err := buildPipeline(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	if err := ok.check(); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}
