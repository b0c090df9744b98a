package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/lmood/lmood/internal/calibrate"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// tinyStore puts synthetic tiny models (untied head, so that generated
// passages differ) named after names into a fresh default store and
// returns the --ort-lib flag that keeps the onnxruntime already loaded.
func tinyStore(t *testing.T, names ...string) string {
	t.Helper()
	testutil.Runtime(t)
	lib := runtime.DefaultLibPathNoEnv()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(runtime.EnvLib, "")
	for i, name := range names {
		tm := testutil.DefaultTiny()
		tm.Untied = true
		tm.Seed += uint64(i) // another model, another GGUF digest
		path := testutil.WriteTiny(t, tm)
		if _, err := store.Default().Import(path, name, store.Source{Kind: "file"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return "--ort-lib=" + lib
}

// runCalib executes the CLI with args and returns its stdout.
func runCalib(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"-q"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

// TestCalibrateThenScore runs `lmood calibrate` on the tiny model, then
// `score --json`: the records gain percentiles and p-values that match the
// schema; other analysis settings or another model are refused when the
// file is named and silently skipped when found automatically.
func TestCalibrateThenScore(t *testing.T) {
	ort := tinyStore(t, "tiny", "tiny2")
	analysis := []string{"-m", "tiny", "-k", "4", "--sigma", "0.05"}
	out, err := runCalib(t, append([]string{"calibrate", ort, "--passages", "60", "--tokens", "10", "--start", "T", "--layer", "1,2"}, analysis...)...)
	if err != nil {
		t.Fatalf("calibrate: %v\n%s", err, out)
	}
	if !strings.Contains(out, "saved to ") || !strings.Contains(out, "self-generated 60 passages") {
		t.Errorf("calibrate output:\n%s", out)
	}
	path := strings.TrimSpace(out[strings.LastIndex(out, "saved to ")+len("saved to "):])
	if _, err := os.Stat(path); err != nil || !strings.HasPrefix(filepath.Base(path), "calibration-resid-") {
		t.Fatalf("calibration file %q: %v", path, err)
	}
	t.Logf("%s", out)

	prompts := []string{"ab cd ef", "zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq zq"}
	score := func(extra ...string) ([]ScoreRecord, string, error) {
		args := append(append([]string{"score", ort, "--json", "--layer", "2"}, analysis...), extra...)
		out, err := runCalib(t, append(args, prompts...)...)
		var recs []ScoreRecord
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var r ScoreRecord
			if json.Unmarshal([]byte(line), &r) == nil && r.Prompt != "" {
				recs = append(recs, r)
			}
		}
		return recs, out, err
	}

	recs, raw, err := score()
	if err != nil || len(recs) != 2 {
		t.Fatalf("score: %v, %d records\n%s", err, len(recs), raw)
	}
	sch, err := jsonschema.NewCompiler().Compile("../../docs/score.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		v, _ := jsonschema.UnmarshalJSON(strings.NewReader(line))
		if err := sch.Validate(v); err != nil {
			t.Errorf("record %d does not match the schema: %v", i, err)
		}
	}
	for _, r := range recs {
		if r.Percentile == nil || r.PValue == nil || *r.Percentile < 0 || *r.Percentile > 1 || *r.PValue <= 0 || *r.PValue > 1 ||
			!strings.HasPrefix(r.Calibration, "self-generated 60 passages") {
			t.Fatalf("%q: percentile %v p %v calibration %q", r.Prompt, r.Percentile, r.PValue, r.Calibration)
		}
		withPct := 0
		for _, tok := range r.Tokens {
			if tok.Percentile != nil {
				withPct++
			}
		}
		if withPct < len(r.Tokens)-1 {
			t.Errorf("%q: %d of %d tokens have a percentile", r.Prompt, withPct, len(r.Tokens))
		}
		t.Logf("%q: %d tokens, ratio %.3f, percentile %.3f, p %.3f, warnings %v", r.Prompt, len(r.Tokens), r.Ratio, *r.Percentile, *r.PValue, r.Warnings)
	}
	// The long prompt is past the reference: still scored, with warnings.
	if w := strings.Join(recs[1].Warnings, " "); !strings.Contains(w, "calibration: ") {
		t.Errorf("long prompt: no calibration warning in %v", recs[1].Warnings)
	}

	// The text table gains the percentile column and the footer.
	text, err := runCalib(t, append(append([]string{"score", ort, "--layer", "2"}, analysis...), prompts[0])...)
	if err != nil || !strings.Contains(text, "percentile") || !strings.Contains(text, "calibrated against self-generated 60 passages") {
		t.Errorf("score table (%v):\n%s", err, text)
	}

	// layers --json: a percentile per hidden state; heatmap: a line.
	out, err = runCalib(t, append(append([]string{"layers", ort, "--json"}, analysis...), prompts[0])...)
	var lr LayersRecord
	if err := json.Unmarshal([]byte(out), &lr); err != nil || len(lr.Layers) != 2 || lr.Calibration == "" {
		t.Fatalf("layers: %v\n%s", err, out)
	}
	checkLayersSchema(t, out)
	for _, l := range lr.Layers {
		if l.Percentile == nil || *l.Percentile < 0 || *l.Percentile > 1 {
			t.Errorf("layers: hidden state %d percentile %v", l.Layer, l.Percentile)
		}
	}
	out, err = runCalib(t, append(append([]string{"heatmap", ort, "--color", "none", "--layer", "2"}, analysis...), prompts[0])...)
	if err != nil || !strings.Contains(out, "calibrated: percentile ") || !strings.Contains(out, "calibrated against self-generated") {
		t.Errorf("heatmap (%v):\n%s", err, out)
	}

	// --no-calibration: no percentiles, and another setup_id.
	plain, _, err := score("--no-calibration")
	if err != nil || plain[0].Percentile != nil || plain[0].Calibration != "" {
		t.Errorf("--no-calibration: %v, %+v", err, plain[0].CalibratedScore)
	}
	if len(plain) > 0 && (recs[0].SetupID == "" || plain[0].SetupID == "" || recs[0].SetupID == plain[0].SetupID) {
		t.Errorf("setup_id calibrated %q, not %q: want both set and different", recs[0].SetupID, plain[0].SetupID)
	}
	// score -o applies the calibration too: its records are those of
	// score --json, setup_id included; without it, those of --no-calibration.
	corpus := filepath.Join(t.TempDir(), "corpus.txt")
	os.WriteFile(corpus, []byte(strings.Join(prompts, "\n")+"\n"), 0o644)
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"calibrated", nil, raw},
		{"--no-calibration", []string{"--no-calibration"}, ""},
	} {
		if tc.want == "" {
			_, tc.want, _ = score(tc.extra...)
		}
		out := filepath.Join(t.TempDir(), "out.jsonl")
		args := append(append([]string{"score", ort, "--json", "--layer", "2", "-f", corpus, "-o", out}, analysis...), tc.extra...)
		if o, err := runCalib(t, args...); err != nil {
			t.Fatalf("score -o (%s): %v\n%s", tc.name, err, o)
		}
		got, _ := os.ReadFile(out)
		if strings.TrimSpace(string(got)) != strings.TrimSpace(tc.want) {
			t.Errorf("score -o (%s) records differ from score --json's:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
	// Other settings, found automatically: not applied, no error.
	if recs, _, err := score("-k", "8"); err != nil || recs[0].Percentile != nil {
		t.Errorf("K=8, automatic: %v, percentile %v", err, recs[0].Percentile)
	}
	// Named explicitly: refused with the reason.
	_, _, err = score("-k", "8", "--calibration", path)
	if !errors.Is(err, calibrate.ErrMismatch) || !strings.Contains(err.Error(), "samples: calibrated 4, asked 8") {
		t.Errorf("K=8, --calibration: err = %v", err)
	}
	// A hidden state that was not calibrated.
	_, _, err = score("--layer", "0", "--calibration", path)
	if !errors.Is(err, calibrate.ErrMismatch) || !strings.Contains(err.Error(), "not calibrated") {
		t.Errorf("layer 0, --calibration: err = %v", err)
	}
	// Another model.
	args := []string{"score", ort, "--json", "-m", "tiny2", "-k", "4", "--sigma", "0.05", "--layer", "2"}
	if _, err := runCalib(t, append(args, "--calibration", path, "ab")...); !errors.Is(err, calibrate.ErrMismatch) || !strings.Contains(err.Error(), "model: calibrated tiny, asked tiny2") {
		t.Errorf("another model: err = %v", err)
	}
	if out, err := runCalib(t, append(args, "ab")...); err != nil || strings.Contains(out, "percentile") {
		t.Errorf("another model, automatic: %v\n%s", err, out)
	}
	// A calibration file of another converter version is refused.
	data, _ := os.ReadFile(path)
	var doc map[string]any
	json.Unmarshal(data, &doc)
	doc["identity"].(map[string]any)["converter_version"] = 1
	data, _ = json.Marshal(doc)
	old := filepath.Join(t.TempDir(), "old.json")
	os.WriteFile(old, data, 0o644)
	if _, _, err := score("--calibration", old); !errors.Is(err, calibrate.ErrMismatch) || !strings.Contains(err.Error(), "converter version: calibrated 1") {
		t.Errorf("converter version 1: err = %v", err)
	}
	// So is one measured on graphs of another revision (they may round
	// differently).
	json.Unmarshal(data, &doc)
	doc["identity"].(map[string]any)["converter_version"] = float64(store.ConverterVersion)
	doc["identity"].(map[string]any)["graph_revision"] = store.RoundingRevision - 1
	data, _ = json.Marshal(doc)
	os.WriteFile(old, data, 0o644)
	want := fmt.Sprintf("graph revision: calibrated %d, asked %d", store.RoundingRevision-1, store.RoundingRevision)
	if _, _, err := score("--calibration", old); !errors.Is(err, calibrate.ErrMismatch) || !strings.Contains(err.Error(), want) {
		t.Errorf("graph revision %d: err = %v", store.RoundingRevision-1, err)
	}
}

// TestCalibrateReference: a user corpus is used by score --reference
// (built and saved on first use, found later); an empty or tiny corpus is
// a clear error.
func TestCalibrateReference(t *testing.T) {
	ort := tinyStore(t, "tiny")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte("# nothing\n\n"), 0o644)
	tiny := filepath.Join(dir, "tiny.txt")
	os.WriteFile(tiny, []byte("one line\nanother line\n"), 0o644)
	var lines []string
	for i := range 40 {
		lines = append(lines, strings.Repeat(string(rune('a'+i%26))+"b ", 3+i%9))
	}
	corpus := filepath.Join(dir, "corpus.txt")
	os.WriteFile(corpus, []byte(strings.Join(lines, "\n")), 0o644)
	analysis := []string{"-m", "tiny", "-k", "4", "--sigma", "0.05", "--layer", "1"}

	if _, err := runCalib(t, append([]string{"calibrate", ort, "--reference", empty}, analysis...)...); err == nil || !strings.Contains(err.Error(), "has no texts") {
		t.Errorf("empty reference: err = %v", err)
	}
	if _, err := runCalib(t, append([]string{"calibrate", ort, "--reference", tiny}, analysis...)...); !errors.Is(err, calibrate.ErrTooSmall) || !strings.Contains(err.Error(), "2 usable texts") {
		t.Errorf("tiny reference: err = %v", err)
	}
	if _, err := runCalib(t, append([]string{"calibrate", ort, "--passages", "0"}, analysis...)...); err == nil || exitCode(err) != 2 {
		t.Errorf("--passages 0: err = %v", err)
	}

	score := append([]string{"score", ort, "--json", "--reference", corpus}, analysis...)
	for round := range 2 { // built the first time, found the second
		out, err := runCalib(t, append(score, "ab ab ab")...)
		var r ScoreRecord
		json.Unmarshal([]byte(out), &r)
		if err != nil || r.Percentile == nil || !strings.HasPrefix(r.Calibration, "file corpus.txt sha256 ") {
			t.Fatalf("round %d: %v, %+v\n%s", round, err, r.CalibratedScore, out)
		}
	}
	files, _ := filepath.Glob(filepath.Join(store.Default().Dir("tiny"), "calibration-*.json"))
	if len(files) != 1 {
		t.Errorf("calibration files %v, want one (built once)", files)
	}
	if _, err := runCalib(t, append([]string{"score", ort, "--no-calibration", "--reference", corpus}, append(analysis, "ab")...)...); exitCode(err) != 2 {
		t.Errorf("--no-calibration with --reference: err = %v", err)
	}
}
