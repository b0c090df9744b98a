package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/eval"
	core "github.com/lmood/lmood/internal/lmood"
)

// TestEvalSpansTiny runs `eval --spans all` (with a prompt-level set too)
// on the synthetic tiny model and checks the shape of both reports: a
// table per span kind with every method, the summary, and one JSON record
// per (kind, method, layer) next to the prompt-level records.
func TestEvalSpansTiny(t *testing.T) {
	ort := tinyStore(t, "tiny")
	dir := t.TempDir()
	in := writeFile(t, dir, "in.txt", strings.Join([]string{
		"The cat sat on the warm mat today.",
		"Our train leaves at 9 from the north station.",
		"She bought three apples at the market.",
		"The river runs past the old mill.",
		"His brother fixed the broken fence in 2019.",
		"A small dog barked at the postman.",
	}, "\n")+"\n")
	args := []string{"eval", ort, "-m", "tiny", "--in", in, "--spans", "all", "--corrupt", "mash", "-k", "2", "--layers", "1,2"}
	out, err := runCalib(t, args...)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	for _, k := range eval.SpanKinds() {
		if !strings.Contains(out, "span edit "+k+": ") {
			t.Errorf("no table for span kind %s", k)
		}
	}
	for _, label := range []string{"drift L1", "drift L2", "z(drift L2)+z(surprisal)", "fisher(drift L1,surprisal)", "minp(drift L2,surprisal)",
		"token-level summary", "shifted set mash", "fisher(drift L2,surprisal)", "cross-fitted on the in-distribution set"} {
		if !strings.Contains(out, label) {
			t.Errorf("report lacks %q:\n%s", label, out)
		}
	}
	if !strings.Contains(out, "span edit digit: 2 edited prompts (4 --in prompts had nothing to edit)") {
		t.Errorf("digit edits not counted as expected:\n%s", out)
	}
	// A kind with nothing to edit in any prompt is reported, and is not a
	// failure.
	noDigits := writeFile(t, dir, "nodigits.txt", "The cat sat on the warm mat today.\nThe river runs past the old mill.\n")
	out, err = runCalib(t, "eval", ort, "-m", "tiny", "--in", noDigits, "--spans", "digit,mashword", "-k", "2", "--layers", "2")
	if err != nil || !strings.Contains(out, "no --in prompt has anything digit can edit") || !strings.Contains(out, "span edit mashword: 2 edited prompts") {
		t.Errorf("no digits: %v\n%s", err, out)
	}

	js, err := runCalib(t, append(args, "--json")...)
	if err != nil {
		t.Fatalf("eval --json: %v\n%s", err, js)
	}
	perKind := map[string]int{}
	prompt := 0
	for _, line := range strings.Split(strings.TrimSpace(js), "\n") {
		var lv struct{ Level string }
		if err := json.Unmarshal([]byte(line), &lv); err != nil {
			t.Fatalf("bad JSON %q: %v", line, err)
		}
		if lv.Level == core.LevelPrompt {
			prompt++
			continue
		}
		var rec core.TokenEvalRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level != core.LevelToken {
			t.Fatalf("record %q: level %q, %v", line, rec.Level, err)
		}
		if rec.Error != "" {
			t.Errorf("span %s: %s", rec.Kind, rec.Error)
			continue
		}
		perKind[rec.Kind]++
		if rec.AUROC == nil || rec.Top1 == nil || rec.Top3 == nil || *rec.Top1 > *rec.Top3 || rec.Prompts < 1 || rec.NIn != 6 || rec.FirstToken != "excluded" || rec.Samples != 2 {
			t.Errorf("record %s", line)
		}
		if (strings.HasPrefix(rec.Method, "fisher(") || strings.HasPrefix(rec.Method, "minp(")) != (rec.PValues == eval.PValuesCrossFit) {
			t.Errorf("p-value source %q on %s", rec.PValues, rec.Method)
		}
	}
	// Per kind: drift at 2 layers, surprisal, and 3 combinations at 2 layers.
	for _, k := range eval.SpanKinds() {
		if perKind[k] != 9 {
			t.Errorf("span %s: %d records, want 9", k, perKind[k])
		}
	}
	// Prompt level: 4 layered methods at 2 layers + 4 baselines.
	if prompt != 12 {
		t.Errorf("%d prompt-level records, want 12", prompt)
	}
}

// TestEvalCalibratedCombinations: with a calibration of the analysis
// ('lmood calibrate'), the combinations of eval take their p-values from
// it, at prompt and token level, and say so; --no-calibration goes back
// to cross-fitting.
func TestEvalCalibratedCombinations(t *testing.T) {
	ort := tinyStore(t, "tiny")
	analysis := []string{"-m", "tiny", "-k", "4", "--sigma", "0.05"}
	if out, err := runCalib(t, append([]string{"calibrate", ort, "--passages", "40", "--tokens", "10", "--start", "T", "--layer", "1,2"}, analysis...)...); err != nil {
		t.Fatalf("calibrate: %v\n%s", err, out)
	}
	in := writeFile(t, t.TempDir(), "in.txt", "The cat sat on the warm mat today.\nShe bought three apples at the market.\nThe river runs past the old mill.\nA small dog barked at the postman.\n")
	sources := func(extra ...string) map[string]int {
		args := append(append([]string{"eval", ort, "--in", in, "--corrupt", "mash", "--spans", "mashword", "--layers", "1,2", "--json"}, analysis...), extra...)
		out, err := runCalib(t, args...)
		if err != nil {
			t.Fatalf("eval %q: %v\n%s", extra, err, out)
		}
		n := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var rec struct {
				Level, Method string
				PValues       string `json:"p_values"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("bad JSON %q", line)
			}
			if rec.PValues != "" {
				n[rec.Level+" "+rec.PValues]++
			}
		}
		return n
	}
	// 2 combinations at 2 layers, at each level.
	if got := sources(); got["prompt calibration"] != 4 || got["token calibration"] != 4 || len(got) != 2 {
		t.Errorf("with the calibration: p-value sources %v, want 4 calibrated records per level", got)
	}
	if got := sources("--no-calibration"); got["prompt cross-fit"] != 4 || got["token cross-fit"] != 4 || len(got) != 2 {
		t.Errorf("--no-calibration: p-value sources %v, want 4 cross-fitted records per level", got)
	}
}
