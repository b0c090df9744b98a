package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/testutil"
)

// scoreJSON scores prompts on the real model and returns the JSON Lines.
func scoreJSON(t *testing.T, prompts []string, samples int, surprisal bool, aggregate ...string) []byte {
	t.Helper()
	m := testutil.RealModel(t)
	af := analysisFlags{samples: samples, sigma: defaultSigma, seed: 7, noise: "per-token", direction: defaultDirection, maxTokens: 64}
	if len(aggregate) > 0 {
		af.aggregate = aggregate[0]
	}
	s, err := newScorerFor(&globals{quiet: true}, scoreFlags{af: &af, layer: -1, surprisal: surprisal}, m)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var buf bytes.Buffer
	for _, p := range prompts {
		if err := report.WriteJSONL(&buf, s.record(p)); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestScoreJSONSchema validates `score --json` records, including failed
// prompts, against docs/score.schema.json, and checks that two runs with
// the same seed give byte-identical output.
func TestScoreJSONSchema(t *testing.T) {
	prompts := []string{
		"Eggplants are purple.",
		"Eggplants are fire-engine red.",
		"tab\there, escape \x1b[2J and a zero\u200bwidth space",
		"",                          // empty: error record
		"bad \xff utf-8",            // invalid: error record
		strings.Repeat("word ", 80), // longer than maxTokens: error record
		"one",
	}
	out1 := scoreJSON(t, prompts, 4, false)
	out2 := scoreJSON(t, prompts, 4, false)
	if !bytes.Equal(out1, out2) {
		t.Error("two runs with the same seed gave different JSON")
	}

	c := jsonschema.NewCompiler()
	sch, err := c.Compile("../../docs/score.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out1)), "\n")
	if len(lines) != len(prompts) {
		t.Fatalf("%d records for %d prompts", len(lines), len(prompts))
	}
	for i, line := range lines {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(line))
		if err != nil {
			t.Fatalf("record %d is not JSON: %v", i, err)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("record %d does not match the schema: %v\n%s", i, err, line)
		}
		var rec ScoreRecord
		json.Unmarshal([]byte(line), &rec)
		if utf8.ValidString(prompts[i]) == (rec.PromptBytes != nil) || (rec.PromptBytes != nil && string(rec.PromptBytes) != prompts[i]) {
			t.Errorf("record %d: prompt_bytes %q for prompt %q", i, rec.PromptBytes, prompts[i])
		}
		if rec.Site != "resid" {
			t.Errorf("record %d: site %q", i, rec.Site)
		}
		wantErr := i >= 3 && i <= 5
		if (rec.Error != "") != wantErr {
			t.Errorf("record %d (%q): error %q", i, prompts[i], rec.Error)
		}
		if !wantErr && (rec.Ratio <= 0 || len(rec.Tokens) == 0) {
			t.Errorf("record %d: ratio %v, %d tokens", i, rec.Ratio, len(rec.Tokens))
		}
	}
}

// TestScoreJSONSurprisal: with --surprisal, records carry the logit
// baselines and a surprisal per token except position 0, the prompt's mean
// surprisal is the mean over tokens 1.., and the records still match the
// schema; --aggregate is recorded and changes the prompt ratio only.
func TestScoreJSONSurprisal(t *testing.T) {
	prompts := []string{"Eggplants are fire-engine red.", "one"}
	sch, err := jsonschema.NewCompiler().Compile("../../docs/score.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	decode := func(out []byte) []ScoreRecord {
		var recs []ScoreRecord
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			v, _ := jsonschema.UnmarshalJSON(strings.NewReader(line))
			if err := sch.Validate(v); err != nil {
				t.Errorf("record does not match the schema: %v\n%s", err, line)
			}
			var r ScoreRecord
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		return recs
	}
	def := decode(scoreJSON(t, prompts, 4, true))
	r := def[0]
	if r.Surprisal == nil || r.Entropy == nil || r.MaxSoftmax == nil || r.Aggregate != core.DefaultAggregate {
		t.Fatalf("baselines missing: %+v", r)
	}
	if r.Tokens[0].Surprisal != nil {
		t.Errorf("position 0 has a surprisal: %v", *r.Tokens[0].Surprisal)
	}
	sum := 0.0
	for _, tok := range r.Tokens[1:] {
		if tok.Surprisal == nil {
			t.Fatalf("token %q has no surprisal", tok.Text)
		}
		sum += *tok.Surprisal
	}
	if mean := sum / float64(len(r.Tokens)-1); math.Abs(mean-*r.Surprisal) > 1e-9 {
		t.Errorf("prompt surprisal %v, mean of tokens %v", *r.Surprisal, mean)
	}
	if one := def[1]; one.Surprisal != nil || one.Error != "" {
		t.Errorf("one-token prompt: surprisal %v, error %q (nothing is predicted)", one.Surprisal, one.Error)
	}
	if plain := decode(scoreJSON(t, prompts[:1], 4, false))[0]; plain.Surprisal != nil || plain.Tokens[1].Surprisal != nil {
		t.Error("surprisal reported without --surprisal")
	}
	med := decode(scoreJSON(t, prompts[:1], 4, false, "median"))[0]
	if med.Aggregate != "median" || med.Ratio == r.Ratio || med.Drift != r.Drift || med.Tokens[2].Ratio != r.Tokens[2].Ratio {
		t.Errorf("--aggregate median: aggregate %q ratio %v (default %v), drift %v (default %v)", med.Aggregate, med.Ratio, r.Ratio, med.Drift, r.Drift)
	}
}

// TestSchemaRejects makes sure the schema check can fail.
func TestSchemaRejects(t *testing.T) {
	sch, err := jsonschema.NewCompiler().Compile("../../docs/score.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`{"prompt":"x"}`,
		`{"prompt":"x","model":"m","layer":-1,"num_layers":30,"samples":4,"sigma":0.01,"seed":1,"noise":"per-token","isolate":false,"direction":"pinch","first_token":"excluded","ratio":0.5,"ratio_std":0.1,"ood":0.7,"input_angle_deg":13,"drift_deg":6,"tokens":[]}`,
		`{"prompt":"x","model":"m","layer":15,"num_layers":30,"samples":4,"sigma":0.01,"seed":1,"noise":"loud","isolate":false,"direction":"pinch","first_token":"excluded","ratio":0.5,"ratio_std":0.1,"ood":0.7,"input_angle_deg":13,"drift_deg":6,"tokens":[]}`,
	} {
		v, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if sch.Validate(v) == nil {
			t.Errorf("schema accepted %s", bad)
		}
	}
}

func TestReadPrompts(t *testing.T) {
	dir := t.TempDir()
	f := dir + "/p.txt"
	os.WriteFile(f, []byte("# comment\n\nfirst\r\n  \nsecond line\n"), 0o644)
	got, err := readPrompts(nil, f)
	if err != nil || len(got) != 2 || got[0] != "first" || got[1] != "second line" {
		t.Errorf("readPrompts = %q, %v", got, err)
	}
	if _, err := readPrompts([]string{"a"}, f); err == nil {
		t.Error("arguments and -f together were accepted")
	}
	empty := dir + "/e.txt"
	os.WriteFile(empty, []byte("# nothing\n"), 0o644)
	if _, err := readPrompts(nil, empty); err == nil || !strings.Contains(err.Error(), "no prompts") {
		t.Errorf("empty file: %v", err)
	}
}

// TestScoreTableSurprisal: `score --surprisal` shows each prompt's mean
// surprisal in the table (the value --json records, "-" for a one-token
// prompt) and says what it is under the table; without the flag the
// table has no such column.
func TestScoreTableSurprisal(t *testing.T) {
	model := realCLI(t)
	prompts := []string{"Eggplants are fire-engine red.", "one"}
	args := append([]string{"score", "-q", "-m", model, "-k", "2", "--surprisal"}, prompts...)
	jsonOut, _, code := runCLI(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("score --json: exit %d", code)
	}
	var rec ScoreRecord
	if err := json.Unmarshal([]byte(strings.SplitN(jsonOut, "\n", 2)[0]), &rec); err != nil || rec.Surprisal == nil {
		t.Fatalf("first record %q: %v", jsonOut, err)
	}
	table, _, code := runCLI(t, args...)
	lines := strings.Split(table, "\n")
	if code != 0 || len(lines) < 6 || !strings.Contains(lines[1], "surprisal") || !strings.Contains(table, "surprisal = the model's mean") {
		t.Fatalf("score --surprisal: exit %d, no surprisal column or note:\n%s", code, table)
	}
	if cells := strings.Split(lines[3], "│"); len(cells) < 7 || strings.TrimSpace(cells[6]) != fmt.Sprintf("%.3f", *rec.Surprisal) {
		t.Errorf("row 1 surprisal cell, want %.3f:\n%s", *rec.Surprisal, table)
	}
	if cells := strings.Split(lines[4], "│"); len(cells) < 7 || strings.TrimSpace(cells[6]) != "-" {
		t.Errorf("one-token row: want - in the surprisal column:\n%s", table)
	}
	plain, _, code := runCLI(t, append([]string{"score", "-q", "-m", model, "-k", "2"}, prompts...)...)
	if code != 0 || strings.Contains(plain, "surprisal") {
		t.Errorf("score without --surprisal: exit %d, mentions surprisal:\n%s", code, plain)
	}
}
