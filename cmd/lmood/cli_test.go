package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/testutil"
)

// runCLI runs lmood in-process with args and returns its stdout, stderr
// and exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errw bytes.Buffer
	code = run(args, &out, &errw)
	return out.String(), errw.String(), code
}

// emptyCache points the cache (store, downloads) at a new temporary
// directory, keeping the onnxruntime library found before.
func emptyCache(t *testing.T) {
	t.Helper()
	lib := runtime.DefaultLibPath()
	t.Setenv(runtime.EnvLib, lib)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
}

var (
	cliCacheOnce sync.Once
	cliCacheDir  string
)

// realCLI prepares full CLI runs on the real model: a cache directory
// shared by this test binary (the GGUF is converted into it once, on first
// use) and the onnxruntime library. It returns the --model argument.
func realCLI(t *testing.T) string {
	t.Helper()
	gguf := testutil.GGUF(t)
	testutil.Runtime(t)
	lib := runtime.DefaultLibPath()
	cliCacheOnce.Do(func() {
		d, err := os.MkdirTemp("", "lmood-cli-test-")
		if err == nil {
			cliCacheDir = d
		}
	})
	if cliCacheDir == "" {
		t.Fatal("no temporary cache directory")
	}
	t.Setenv(runtime.EnvLib, lib)
	t.Setenv("XDG_CACHE_HOME", cliCacheDir)
	return gguf
}

// failWriter fails every write, like a full disk.
type failWriter struct{ writes int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.writes++
	return 0, errors.New("no space left on device")
}

// hostileName is a file name holding an OSC title sequence, a colour
// escape and a right-to-left override.
const hostileName = "\x1b]0;pwned\x07\x1b[31mred\u202eset"

// assertEscaped checks that text shows hostileName's characters escaped.
func assertEscaped(t *testing.T, what, text string) {
	t.Helper()
	for _, raw := range []string{"\x1b", "\x07", "\u202e"} {
		if strings.Contains(text, raw) {
			t.Errorf("%s holds raw %q:\n%q", what, raw, text)
		}
	}
	for _, shown := range []string{"␛]0;pwned␇", "␛[31mred", "⟨U+202E⟩set"} {
		if !strings.Contains(text, shown) {
			t.Errorf("%s does not show %q:\n%s", what, shown, text)
		}
	}
}

// TestThreadsRange (issue 14 #1): --threads outside 0..MaxThreads() is a
// usage error naming the range, checked before any model is loaded; 0 and
// the maximum pass (the run then stops at --samples 0).
func TestThreadsRange(t *testing.T) {
	maxT := core.MaxThreads()
	for _, tc := range []struct {
		threads string
		ok      bool
	}{
		{"-5", false}, {"-1", false}, {fmt.Sprint(maxT + 1), false}, {"100000", false},
		{"0", true}, {fmt.Sprint(maxT), true},
	} {
		t.Run(tc.threads, func(t *testing.T) {
			for _, cmd := range []string{"score", "heatmap", "layers"} {
				_, errOut, code := runCLI(t, cmd, "-m", "no-such-model", "--threads="+tc.threads, "--samples", "0", "x")
				if code != 2 {
					t.Fatalf("%s: exit %d, want 2; stderr %q", cmd, code, errOut)
				}
				threadsErr := strings.Contains(errOut, "--threads")
				if threadsErr == tc.ok {
					t.Fatalf("%s --threads %s: stderr %q", cmd, tc.threads, errOut)
				}
				if !tc.ok && !strings.Contains(errOut, fmt.Sprintf("between 0 (one per core) and %d", maxT)) {
					t.Errorf("%s: message does not give the range: %q", cmd, errOut)
				}
			}
		})
	}
	if maxT < 1 || maxT > core.MaxThreadsCap {
		t.Errorf("MaxThreads() = %d", maxT)
	}
}

// TestUsageExitCodes (issue 14 #17 and #20): requests that are wrong as
// given exit 2, before any model work.
func TestUsageExitCodes(t *testing.T) {
	emptyCache(t)
	dir := t.TempDir()
	gguf := writeFile(t, dir, "m.gguf", "not really a gguf")
	blankTwin := writeFile(t, dir, "p.tsv", "kind\tplain sentence\t  \n")
	blankPlain := writeFile(t, dir, "q.tsv", "kind\t\ttwin\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "--name", "../x", gguf}, `invalid model name "../x"`},
		{[]string{"pull", "nosuch"}, "is not a model `lmood pull` knows"},
		{[]string{"score", "-m", "bad/name", "x"}, `invalid model name "bad/name"`},
		{[]string{"score", "--sigma", "1e-300", "x"}, "--sigma: must be in [1e-06, 10)"},
		{[]string{"heatmap", "--range=-1e308:1e308", "x"}, "within ±1e+06"},
		{[]string{"score", "--pairs", blankTwin}, "p.tsv:1: the odd twin (field 3) is blank"},
		{[]string{"score", "--pairs", blankPlain}, "q.tsv:1: the plain sentence (field 2) is blank"},
		{[]string{"score", "--layer", "logits", "--site", "mlp", "x"}, "--layer logits is --site logits"},
		{[]string{"score", "--site", "nowhere", "x"}, `--site: unknown site "nowhere"`},
		{[]string{"layers", "--site", "logits", "x"}, "no index to compare across"},
		{[]string{"heatmap", "--grid", "--site", "logits", "x"}, "--grid shows a site at every index"},
		// --png is checked before the model is even looked up: no "model
		// not found" here.
		{[]string{"layers", "-m", "no-such-model", "--png", "/nonexistent/x.png", "x"}, "--png: cannot write /nonexistent/x.png"},
		{[]string{"layers", "-m", "no-such-model", "--png", dir, "x"}, "is a directory"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d (want 2), stderr %q, want it to contain %q; stdout %q", code, errOut, tc.want, out)
			}
			if strings.Count(errOut, "lmood: ") != 1 {
				t.Errorf("want one message, got %q", errOut)
			}
		})
	}
}

// TestWriteErrors (issue 14 #16): output that cannot be written fails the
// run, and --version reports its write error once.
func TestWriteErrors(t *testing.T) {
	emptyCache(t)
	for _, args := range [][]string{{"--version"}, {"models"}, {"prune", "--dry-run"}} {
		t.Run(strings.Join(args, " ")+" to a failing writer", func(t *testing.T) {
			var errw bytes.Buffer
			code := run(args, &failWriter{}, &errw)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if got := strings.Count(errw.String(), "no space left on device"); got != 1 {
				t.Errorf("error printed %d times: %q", got, errw.String())
			}
		})
	}
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	tiny := testutil.WriteTiny(t, testutil.DefaultTiny())
	for _, args := range [][]string{{"--version"}, {"models"}, {"import", tiny, "--name", "tiny"}, {"import", tiny, "--name", "tiny"}} {
		t.Run(strings.Join(args[:1], " ")+" > /dev/full", func(t *testing.T) {
			var errw bytes.Buffer
			code := run(args, full, &errw)
			if code != 1 || strings.Count(errw.String(), "no space left on device") != 1 {
				t.Errorf("exit %d (want 1), stderr %q", code, errw.String())
			}
		})
	}
}

// TestHostileFileNamesInErrors (issue 14 #7): a file name with escapes
// reaches stderr escaped in error messages (no model needed).
func TestHostileFileNamesInErrors(t *testing.T) {
	emptyCache(t)
	dir := t.TempDir()
	plain := writeFile(t, dir, "plain.txt", "one\ntwo\n")
	empty := writeFile(t, dir, hostileName+".txt", "# nothing\n")
	badTSV := writeFile(t, dir, hostileName+".tsv", "only one field\n")
	for _, args := range [][]string{
		{"eval", "--in", plain, "--shifted", empty},
		{"score", "--pairs", badTSV},
		{"score", "-f", filepath.Join(dir, hostileName+".missing")},
		{"score", "-m", filepath.Join(dir, hostileName+".gguf"), "x"},
	} {
		t.Run(args[0]+" "+args[1], func(t *testing.T) {
			_, errOut, code := runCLI(t, args...)
			if code == 0 {
				t.Fatalf("exit 0")
			}
			assertEscaped(t, "stderr", errOut)
		})
	}
}

// TestHostileSetNamesAndEvalSite (issue 14 #7, and --site for eval): set
// names taken from hostile file names (--shifted, --pairs) are printed
// escaped in the text report and in notes; eval --site mlp measures the
// MLP outputs and says so in the footer and in every JSON record.
func TestHostileSetNamesAndEvalSite(t *testing.T) {
	model := realCLI(t)
	dir := t.TempDir()
	plain := writeFile(t, dir, "plain.txt", "The cat sat on the mat.\nA week has seven days.\nWater boils at one hundred degrees.\nMy sister bought fresh bread.\n")
	shifted := writeFile(t, dir, hostileName+".txt", "lsadfhl; wiffle jfdalkgy burh lgoi\nqwpeo rutyal skdjf hgmz\nnbxcv qoweiu zmxn\n")
	pairs := writeFile(t, dir, hostileName+"2.tsv", "The dog barked at night.\tThe dog barked at purple.\nRain fell on the roof.\tRain fell on the elephant.\n")
	args := []string{"eval", "-m", model, "--quiet", "--in", plain, "--shifted", shifted, "--pairs", pairs, "-k", "2", "--site", "mlp", "--layers", "5,15"}
	out, errOut, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	assertTerminalSafe(t, out)
	assertEscaped(t, "eval report", out)
	if !strings.Contains(out, "drift at site mlp") {
		t.Errorf("footer does not name the site:\n%s", out)
	}
	js, errOut, code := runCLI(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(js), "\n") {
		var rec core.EvalRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		n++
		if rec.Site != "mlp" || !strings.HasPrefix(rec.Set, "\x1b]0;pwned") {
			t.Errorf("record site %q set %q", rec.Site, rec.Set)
		}
	}
	if n == 0 {
		t.Fatal("no JSON records")
	}
	// attn and mlp have no index 0.
	if _, errOut, code := runCLI(t, "eval", "-m", model, "--in", plain, "--shifted", shifted, "--site", "attn", "--layers", "0,5"); code != 2 || !strings.Contains(errOut, "site attn has indices 1..30, not 0") {
		t.Errorf("--site attn --layers 0: exit %d, %q", code, errOut)
	}
}

// TestReplicationSetup runs the language-model replication's setup (the
// logits, whole-prompt noise, position 0 counted, K=50) on its four probe
// pairs, as `lmood score --site logits --noise whole --include-first -k 50
// --pairs prompts/probes.tsv` does on all of them.
func TestReplicationSetup(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute of analysis")
	}
	model := realCLI(t)
	var four []string
	for _, line := range strings.Split(readFileT(t, "../../prompts/probes.tsv"), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") && len(four) < 4 {
			four = append(four, line)
		}
	}
	tsv := writeFile(t, t.TempDir(), "replication.tsv", strings.Join(four, "\n")+"\n")
	out, errOut, code := runCLI(t, "score", "-m", model, "--quiet", "--site", "logits", "--noise", "whole", "--include-first", "-k", "50", "--pairs", tsv, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	sch, err := jsonschema.NewCompiler().Compile("../../docs/score.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d records, want 8 (4 pairs)", len(lines))
	}
	for i, line := range lines {
		v, _ := jsonschema.UnmarshalJSON(strings.NewReader(line))
		if err := sch.Validate(v); err != nil {
			t.Errorf("record %d does not match the schema: %v", i, err)
		}
		var rec ScoreRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Error != "" || rec.Site != "logits" || rec.Layer != rec.NumLayers || rec.Noise != "whole" ||
			rec.Samples != 50 || rec.FirstToken != "included" || !(rec.Ratio > 0) || len(rec.Tokens) < 2 {
			t.Errorf("record %d: site %q layer %d of %d noise %q K=%d first %q ratio %v tokens %d error %q",
				i, rec.Site, rec.Layer, rec.NumLayers, rec.Noise, rec.Samples, rec.FirstToken, rec.Ratio, len(rec.Tokens), rec.Error)
		}
	}
}

// TestSiteFlags: --layer logits is --site logits; layers --site shows the
// site at every index (norm from 0, mlp from 1); heatmap names the site.
func TestSiteFlags(t *testing.T) {
	model := realCLI(t)
	prompt := "Eggplants are fire-engine red."
	a, errOut, code := runCLI(t, "score", "-m", model, "-k", "2", "--json", "--layer", "logits", prompt)
	if code != 0 {
		t.Fatalf("--layer logits: exit %d: %s", code, errOut)
	}
	b, _, _ := runCLI(t, "score", "-m", model, "-k", "2", "--json", "--site", "logits", prompt)
	var at ScoreRecord
	if err := json.Unmarshal([]byte(a), &at); err != nil || a != b || at.Site != "logits" || at.Layer != 30 {
		t.Errorf("--layer logits and --site logits differ or are not at logits (%v):\n%s\n%s", err, a, b)
	}
	text, _, _ := runCLI(t, "score", "-m", model, "-k", "2", "--site", "mlp", "--layer", "15", prompt)
	if !strings.Contains(text, "site mlp.15 of 30") {
		t.Errorf("score footer does not name the site:\n%s", text)
	}
	for _, tc := range []struct {
		site   string
		lo, hi int
	}{{"norm", 0, 30}, {"mlp", 1, 30}, {"resid", 1, 30}} {
		out, errOut, code := runCLI(t, "layers", "-m", model, "-k", "2", "--json", "--site", tc.site, prompt)
		if code != 0 {
			t.Fatalf("layers --site %s: exit %d: %s", tc.site, code, errOut)
		}
		checkLayersSchema(t, out)
		var rec LayersRecord
		if err := json.Unmarshal([]byte(out), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Site != tc.site || len(rec.Layers) != tc.hi-tc.lo+1 || rec.Layers[0].Layer != tc.lo || rec.Layers[len(rec.Layers)-1].Layer != tc.hi {
			t.Errorf("layers --site %s: site %q, %d indices from %d", tc.site, rec.Site, len(rec.Layers), rec.Layers[0].Layer)
		}
	}
	out, _, _ := runCLI(t, "layers", "-m", model, "-k", "2", "--site", "attn", "--width", "0", prompt)
	if !strings.Contains(out, "ratio at site attn, indices 1–30 of 30") {
		t.Errorf("layers footer does not name the site:\n%s", out)
	}
	out, _, _ = runCLI(t, "heatmap", "-m", model, "-k", "2", "--color", "none", "--site", "attn", prompt)
	if !strings.Contains(out, "site attn.15 of 30") {
		t.Errorf("heatmap legend does not name the site:\n%s", out)
	}
}

// readFileT reads a file or fails the test.
func readFileT(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAdaptiveKFlags: --precision-target reaches the core, records say how
// many nudges were used, a run that stopped after n nudges equals a fixed
// run of n, and the table and footer show K; --matmul-accuracy on a
// float32 model records level 0.
func TestAdaptiveKFlags(t *testing.T) {
	gguf := realCLI(t)
	// A float32 store (the default may be i8, whose tied head is
	// block-quantized and so takes the accuracy level).
	model := "cli-f32"
	if _, errOut, code := runCLI(t, "import", "--quiet", "--name", model, "--precision", "f32", gguf); code != 0 {
		t.Fatalf("import --precision f32: exit %d: %s", code, errOut)
	}
	prompt := "Eggplants are fire-engine red."
	// A 50% target is met after the first round of 8 nudges.
	a, errOut, code := runCLI(t, "score", "-m", model, "-k", "32", "--precision-target", "0.5", "--matmul-accuracy", "4", "--json", prompt)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkScoreSchema(t, a)
	b, _, _ := runCLI(t, "score", "-m", model, "-k", "8", "--json", prompt)
	var ra, rb ScoreRecord
	if err := json.Unmarshal([]byte(a), &ra); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &rb); err != nil {
		t.Fatal(err)
	}
	if ra.SamplesUsed != 8 || ra.Samples != 32 || ra.PrecisionTarget != 0.5 || ra.MatmulAccuracy != 0 || rb.SamplesUsed != 8 || rb.PrecisionTarget != 0 {
		t.Errorf("adaptive record: samples %d, used %d, target %v, accuracy %d; fixed: used %d, target %v",
			ra.Samples, ra.SamplesUsed, ra.PrecisionTarget, ra.MatmulAccuracy, rb.SamplesUsed, rb.PrecisionTarget)
	}
	if ra.Ratio != rb.Ratio || ra.RatioStd != rb.RatioStd || ra.Tokens[2].Ratio != rb.Tokens[2].Ratio {
		t.Errorf("adaptive run stopped at 8 nudges: ratio %v ± %v, fixed K=8: %v ± %v", ra.Ratio, ra.RatioStd, rb.Ratio, rb.RatioStd)
	}
	if ra.SetupID == rb.SetupID {
		t.Error("adaptive and fixed runs share a setup_id")
	}
	text, _, _ := runCLI(t, "score", "-m", model, "-k", "32", "--precision-target", "0.5", prompt, "Eggplants are purple.")
	if !strings.Contains(text, "│ K │") && !strings.Contains(text, " K ") || !strings.Contains(text, "K adaptive ≤ 32 (precision target 0.5): mean 8.0 used, 8–8") {
		t.Errorf("table has no K column or footer:\n%s", text)
	}
	out, errOut, code := runCLI(t, "layers", "-m", model, "-k", "16", "--precision-target", "1e-6", "--json", prompt)
	if code != 0 {
		t.Fatalf("layers: exit %d: %s", code, errOut)
	}
	checkLayersSchema(t, out)
	var lr LayersRecord
	if err := json.Unmarshal([]byte(out), &lr); err != nil || lr.SamplesUsed != 16 {
		t.Errorf("layers with an unreachable target: samples_used %d (%v), want 16", lr.SamplesUsed, err)
	}
	if _, errOut, code := runCLI(t, "score", "-m", model, "--precision-target", "2", prompt); code != 2 || !strings.Contains(errOut, "precision-target") {
		t.Errorf("--precision-target 2: exit %d: %s", code, errOut)
	}
}

// TestMemoryRefusalCLI: with too little memory available, score refuses
// before loading the model and says what it estimated and what to try.
func TestMemoryRefusalCLI(t *testing.T) {
	model := realCLI(t)
	old := core.MemAvailable
	defer func() { core.MemAvailable = old }()
	core.MemAvailable = func() (int64, bool) { return 200 << 20, true }
	_, errOut, code := runCLI(t, "score", "-m", model, "Eggplants are purple.")
	if code == 0 || !strings.Contains(errOut, "needs about") || !strings.Contains(errOut, "only 200 MiB is available") || !strings.Contains(errOut, "--batch-memory") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// checkScoreSchema validates each line of out, `lmood score --json`
// records, against docs/score.schema.json.
func checkScoreSchema(t *testing.T, out string) { checkRecords(t, out, "score") }

// schemas compiles each docs/<kind>.schema.json once.
var schemas sync.Map // kind → func() (*jsonschema.Schema, error)

// checkRecords validates each line of out, JSON Lines records of a kind
// ("score", "layers"), against docs/<kind>.schema.json.
func checkRecords(t *testing.T, out, kind string) {
	t.Helper()
	file := "docs/" + kind + ".schema.json"
	compile, _ := schemas.LoadOrStore(kind, sync.OnceValues(func() (*jsonschema.Schema, error) {
		return jsonschema.NewCompiler().Compile("../../" + file)
	}))
	sch, err := compile.(func() (*jsonschema.Schema, error))()
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(line))
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s record %d does not match %s: %v\n%s", kind, i+1, file, err, line)
		}
	}
}
