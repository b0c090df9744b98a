package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/testutil"
)

// parseEvalFlags builds eval flags from command-line arguments.
func parseEvalFlags(t *testing.T, args ...string) *evalFlags {
	t.Helper()
	ef := &evalFlags{}
	cmd := &cobra.Command{Use: "eval"}
	ef.register(cmd, &globals{})
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("flags %q: %v", args, err)
	}
	return ef
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEvalPlan(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "in.txt", "The cat sat on the mat.\nA dog ran in the park.\nThe cat sat on the mat.\nBirds sing at dawn.\n")
	js := writeFile(t, dir, "odd.jsonl", `{"text":"zzq vvk"}`+"\n"+`{"text":"qqz kkv"}`+"\n")
	pairs := writeFile(t, dir, "anomaly.tsv", "He ate soup.\tHe ate clouds.\nShe read a book.\tShe read a shoe.\n")
	dup := writeFile(t, dir, "shuffle.txt", "x y\n")
	tests := []struct {
		name      string
		args      []string
		wantIn    []string
		wantSets  []string
		wantSizes []int
		wantErr   string
		usage     bool
	}{
		{
			name:      "in and shifted",
			args:      []string{"--in", in, "--shifted", js},
			wantIn:    []string{"The cat sat on the mat.", "A dog ran in the park.", "Birds sing at dawn."},
			wantSets:  []string{"odd"},
			wantSizes: []int{2},
		},
		{
			name:      "limit applies to every file",
			args:      []string{"--in", in, "--shifted", js, "--pairs", pairs, "--limit", "1"},
			wantIn:    []string{"The cat sat on the mat.", "He ate soup."},
			wantSets:  []string{"odd", "anomaly"},
			wantSizes: []int{1, 1},
		},
		{
			name:      "corruptions of the in set",
			args:      []string{"--in", in, "--corrupt", "shuffle,script"},
			wantIn:    []string{"The cat sat on the mat.", "A dog ran in the park.", "Birds sing at dawn."},
			wantSets:  []string{"shuffle", "script"},
			wantSizes: []int{3, 3},
		},
		{
			name:      "pairs alone",
			args:      []string{"--pairs", pairs},
			wantIn:    []string{"He ate soup.", "She read a book."},
			wantSets:  []string{"anomaly"},
			wantSizes: []int{2},
		},
		{
			name:      "every aggregation",
			args:      []string{"--in", in, "--shifted", js, "--aggregate", "all"},
			wantIn:    []string{"The cat sat on the mat.", "A dog ran in the park.", "Birds sing at dawn."},
			wantSets:  []string{"odd"},
			wantSizes: []int{2},
		},
		{
			name:      "a list of aggregations",
			args:      []string{"--in", in, "--shifted", js, "--aggregate", "median,flat"},
			wantIn:    []string{"The cat sat on the mat.", "A dog ran in the park.", "Birds sing at dawn."},
			wantSets:  []string{"odd"},
			wantSizes: []int{2},
		},
		{name: "unknown aggregation", args: []string{"--in", in, "--shifted", js, "--aggregate", "mode"}, wantErr: "aggregat", usage: true},
		{name: "no in", args: []string{"--shifted", js}, wantErr: "no in-distribution", usage: true},
		{name: "no shifted", args: []string{"--in", in}, wantErr: "no shifted set", usage: true},
		{name: "corrupt without in", args: []string{"--pairs", pairs, "--corrupt", "mash"}, wantErr: "give --in", usage: true},
		{name: "bad kind", args: []string{"--in", in, "--corrupt", "melt"}, wantErr: "unknown corruption", usage: true},
		{name: "name clash", args: []string{"--in", in, "--shifted", dup, "--corrupt", "shuffle"}, wantErr: "named \"shuffle\"", usage: true},
		{name: "negative limit", args: []string{"--in", in, "--shifted", js, "--limit", "-1"}, wantErr: "--limit", usage: true},
		{name: "missing file", args: []string{"--in", filepath.Join(dir, "nope.txt"), "--shifted", js}, wantErr: "--in"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseEvalFlags(t, tc.args...).plan()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				var ue usageError
				if errors.As(err, &ue) != tc.usage {
					t.Errorf("usage error = %v, want %v", !tc.usage, tc.usage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.In, tc.wantIn) {
				t.Errorf("in = %q, want %q", p.In, tc.wantIn)
			}
			var names []string
			var sizes []int
			for _, s := range p.Sets {
				names, sizes = append(names, s.Name), append(sizes, len(s.Texts))
			}
			if !slices.Equal(names, tc.wantSets) || !slices.Equal(sizes, tc.wantSizes) {
				t.Errorf("sets %v sizes %v, want %v %v", names, sizes, tc.wantSets, tc.wantSizes)
			}
		})
	}
}

func TestWriteCorruptedSets(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "in.txt", "The cat sat on the mat.\nA dog ran in the park.\n")
	odd := writeFile(t, dir, "odd.txt", "zzq\n")
	ef := parseEvalFlags(t, "--in", in, "--corrupt", "mash,shuffle", "--shifted", odd, "--seed", "3")
	p, err := ef.plan()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := core.WriteCorruptedSets(out, p); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"mash", "shuffle"} {
		got, err := eval.ReadTexts(filepath.Join(out, kind+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := eval.CorruptAll(kind, []string{"The cat sat on the mat.", "A dog ran in the park."}, 3)
		if !slices.Equal(got, want) {
			t.Errorf("%s: wrote %q, want %q", kind, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "odd.txt")); err == nil {
		t.Error("a --shifted set was written as if corrupted")
	}
}

// sampleReports is a two-set evaluation with known rows.
func sampleReports(t *testing.T) []evalSetReport {
	t.Helper()
	in := []eval.Scores{
		{Tokens: 5, Drift: []float64{0, 1}, Surprisal: 1, Entropy: 1, MaxSoftmax: 0.5},
		{Tokens: 6, Drift: []float64{1, 0}, Surprisal: 2, Entropy: 1, MaxSoftmax: 0.4},
	}
	a := []eval.Scores{{Tokens: 6, Drift: []float64{2, -1}, Surprisal: 3, Entropy: 1, MaxSoftmax: 0.3}}
	b := []eval.Scores{{Tokens: 9, Drift: []float64{0.5, 0.5}, Surprisal: 0, Entropy: 1, MaxSoftmax: 0.5}}
	var reps []evalSetReport
	for _, s := range []struct {
		name string
		out  []eval.Scores
	}{{"alpha", a}, {"beta", b}} {
		rows, err := eval.Evaluate(in, s.out, []int{4, 8}, 0)
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, evalSetReport{Name: s.name, Rows: rows})
	}
	reps[1].Failed = 1
	return reps
}

func TestEvalTable(t *testing.T) {
	reps := sampleReports(t)
	h, cells := evalTable(reps[0].Rows)
	if len(h) != 5 || h[1] != "AUROC" || h[2] != "AUROC len-matched" {
		t.Errorf("header %q", h)
	}
	wantLabels := []string{"drift L4", "drift L8", "surprisal", "entropy", "neg-max-softmax", "length (tokens)", "z(drift L4)+z(surprisal)", "z(drift L8)+z(surprisal)",
		"fisher(drift L4,surprisal)", "fisher(drift L8,surprisal)", "minp(drift L4,surprisal)", "minp(drift L8,surprisal)"}
	var labels []string
	for _, c := range cells {
		labels = append(labels, c[0])
		if len(c) != 5 {
			t.Errorf("row %q has %d cells", c, len(c))
		}
	}
	if !slices.Equal(labels, wantLabels) {
		t.Errorf("labels %q, want %q", labels, wantLabels)
	}
	// drift L4: the shifted item scores 2 > 1 > 0: AUROC 1; matched with
	// the length-6 item (drift 1): 1.
	if cells[0][1] != "1.000" || cells[0][2] != "1.000" {
		t.Errorf("drift L4 row %q", cells[0])
	}
	// beta has no length match.
	_, cells = evalTable(reps[1].Rows)
	if cells[0][2] != "n/a" {
		t.Errorf("unmatched set: matched cell %q, want n/a", cells[0][2])
	}

	h, cells = evalSummaryTable(reps, 8, drift.Flat)
	if len(cells) != 2 || cells[0][0] != "alpha" || !strings.Contains(h[6], "L8") {
		t.Fatalf("summary %q %q", h, cells)
	}
	if cells[0][7] != "1.000 (L4)" {
		t.Errorf("best drift cell %q, want 1.000 (L4)", cells[0][7])
	}
	// alpha: drift L8 scores the shifted item lowest: AUROC 0, flipped 1.
	if cells[0][8] != "1.000 (L8)" {
		t.Errorf("flipped best drift cell %q, want 1.000 (L8)", cells[0][8])
	}
}

func TestWriteEvalText(t *testing.T) {
	var buf bytes.Buffer
	meta := EvalRecord{Setup: core.Setup{Model: "m", NumLayers: 8, Samples: 4, Sigma: 0.01, Noise: "per-token", Direction: "pinch"}, FirstToken: "excluded"}
	if err := writeEvalText(&buf, sampleReports(t), meta, 2, 4); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"shifted set alpha: 1 shifted vs 2 in-distribution prompts; 1 length-matched pairs",
		"shifted set beta: 1 shifted vs 2 in-distribution prompts (1 failed, left out); 0 length-matched pairs",
		"length (tokens)", "best drift layer: 4 (AUROC 1.000); the opposite orientation does best at layer 8 (AUROC 1.000)", "summary (AUROC):", "-ln(ratio)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteEvalJSON(t *testing.T) {
	var buf bytes.Buffer
	reps := sampleReports(t)
	if err := writeEvalJSON(&buf, reps, EvalRecord{Setup: core.Setup{Model: "m", Direction: "pinch"}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if want := len(reps[0].Rows) + len(reps[1].Rows); len(lines) != want {
		t.Fatalf("%d lines, want %d", len(lines), want)
	}
	var nullMatched, layered int
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("bad JSON %q: %v", l, err)
		}
		for _, k := range []string{"set", "method", "layer", "auroc", "auroc_length_matched", "n_matched", "aupr", "fpr95", "model", "direction"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("record lacks %q: %s", k, l)
			}
		}
		if rec["auroc_length_matched"] == nil {
			nullMatched++
		}
		if rec["layer"] != nil {
			layered++
		}
	}
	// beta has no match: all its rows carry null; 8 layer rows per set.
	if nullMatched != len(reps[1].Rows) || layered != 16 {
		t.Errorf("null matched %d, layered %d; want %d, 16", nullMatched, layered, len(reps[1].Rows))
	}
}

func TestEvalMiddle(t *testing.T) {
	for _, tc := range []struct {
		layers []int
		mid    int
		want   int
	}{
		{[]int{5, 10, 15, 20}, 15, 15},
		{[]int{5, 10, 20}, 15, 10},
		{[]int{30}, 15, 30},
	} {
		if got := evalMiddle(tc.layers, tc.mid); got != tc.want {
			t.Errorf("evalMiddle(%v, %d) = %d, want %d", tc.layers, tc.mid, got, tc.want)
		}
	}
}

// TestEvalRealModel runs a small evaluation on the real model: every
// method and layer must get an AUROC row, and length is always reported.
func TestEvalRealModel(t *testing.T) {
	if testing.Short() {
		t.Skip("real model: skipped in -short mode")
	}
	m := testutil.RealModel(t)
	defer m.Close()
	dir := t.TempDir()
	in := writeFile(t, dir, "plain.txt", strings.Join([]string{
		"The chef sliced the bread with a sharp knife.",
		"Our train was delayed because of snow on the tracks.",
		"Water boils at a lower temperature on a mountain.",
		"She asked her brother to feed the cat while she was away.",
		"The museum opens at nine and closes at five.",
		"Please bring your passport to the airport tomorrow.",
		"The team scored twice in the second half.",
		"Plants turn sunlight and water into sugar.",
	}, "\n")+"\n")
	layers := []int{5, 15}
	ef := parseEvalFlags(t, "--in", in, "--corrupt", "shuffle,mash", "-k", "4", "--layers", "5,15", "--limit", "8")
	plan, err := ef.plan()
	if err != nil {
		t.Fatal(err)
	}
	g := &globals{quiet: true}
	var buf bytes.Buffer
	if err := runEval(context.Background(), g, ef, plan, m, &buf); err != nil {
		t.Fatalf("eval: %v\n%s", err, buf.String())
	}
	out := buf.String()
	if !strings.Contains(out, "summary (AUROC):") {
		t.Error("no summary table")
	}
	// Count the labels of the per-set tables (five columns each).
	labels := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if cells := strings.Split(line, "│"); len(cells) == 7 {
			labels[strings.TrimSpace(cells[1])]++
		}
	}
	want := []string{"surprisal", "entropy", "neg-max-softmax", "length (tokens)"}
	agg, err := drift.ParseAggregation(core.DefaultAggregate)
	if err != nil {
		t.Fatal(err)
	}
	dm := core.DriftMethod(agg) // the default aggregation names the drift rows
	for _, h := range layers {
		l := dm + " L" + strconv.Itoa(h)
		want = append(want, l, "z("+l+")+z(surprisal)", "fisher("+l+",surprisal)", "minp("+l+",surprisal)")
	}
	for _, set := range []string{"shuffle", "mash"} {
		if !strings.Contains(out, "shifted set "+set+": ") {
			t.Errorf("no table for %s", set)
		}
	}
	for _, w := range want {
		if labels[w] != 2 {
			t.Errorf("row %q appears %d times, want once per set:\n%s", w, labels[w], out)
		}
	}

	// The JSON form, on a smaller plan: one finite record per (set,
	// method, layer).
	ef = parseEvalFlags(t, "--in", in, "--corrupt", "mash", "-k", "4", "--layers", "5,15", "--limit", "3", "--json")
	if plan, err = ef.plan(); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := runEval(context.Background(), g, ef, plan, m, &buf); err != nil {
		t.Fatalf("eval --json: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if want := 4*len(layers) + 4; len(lines) != want {
		t.Fatalf("%d JSON lines, want %d", len(lines), want)
	}
	for _, l := range lines {
		var rec EvalRecord
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("bad JSON %q: %v", l, err)
		}
		if rec.AUROC == nil || *rec.AUROC < 0 || *rec.AUROC > 1 {
			t.Errorf("AUROC missing or out of range: %s", l)
		}
		if rec.Samples != 4 || rec.Negatives != 3 {
			t.Errorf("samples %d, in %d: %s", rec.Samples, rec.Negatives, l)
		}
	}
}

// TestEvalAggregateRows: labels of aggregation rows, and the table of each
// aggregation's best layer (only with more than one aggregation).
func TestEvalAggregateRows(t *testing.T) {
	for _, tc := range []struct {
		row  eval.Row
		want string
	}{
		{eval.Row{Method: "drift", Layer: 5}, "drift L5"},
		{eval.Row{Method: "drift/median", Layer: 5}, "drift/median L5"},
		{eval.Row{Method: "drift+surprisal", Layer: 5}, "z(drift L5)+z(surprisal)"},
		{eval.Row{Method: "drift/topk+surprisal", Layer: 8}, "z(drift/topk L8)+z(surprisal)"},
		{eval.Row{Method: "length", Layer: -1}, "length (tokens)"},
		{eval.Row{Method: "surprisal", Layer: -1}, "surprisal"},
		{eval.Row{Method: "fisher(drift,surprisal)", Layer: 5}, "fisher(drift L5,surprisal)"},
		{eval.Row{Method: "minp(drift/median,surprisal)", Layer: 8}, "minp(drift/median L8,surprisal)"},
	} {
		if got := evalMethodLabel(tc.row); got != tc.want {
			t.Errorf("label of %+v = %q, want %q", tc.row, got, tc.want)
		}
	}
	reps := []evalSetReport{{Name: "mash", Rows: []eval.Row{
		{Method: "drift", Layer: 5, AUROC: 0.6}, {Method: "drift", Layer: 8, AUROC: 0.7},
		{Method: "drift/median", Layer: 5, AUROC: 0.9}, {Method: "drift/median", Layer: 8, AUROC: 0.8},
	}}}
	h, cells := evalAggregateTable(reps, []drift.Aggregation{drift.Flat, drift.Median, drift.TopK})
	want := []string{"mash", "0.700 (L8)", "0.900 (L5)", "n/a"}
	if !slices.Equal(h, []string{"shifted set", "flat", "median", "topk"}) || len(cells) != 1 || !slices.Equal(cells[0], want) {
		t.Errorf("table %q %q, want cells %q", h, cells, want)
	}
	var one, many bytes.Buffer
	meta := EvalRecord{Setup: core.Setup{Model: "m", Direction: "expand"}}
	if err := writeEvalText(&one, reps, meta, 3, 5); err != nil {
		t.Fatal(err)
	}
	if err := writeEvalText(&many, reps, meta, 3, 5, drift.Median, drift.Flat); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(one.String(), "per prompt-level aggregation") || !strings.Contains(many.String(), "per prompt-level aggregation") {
		t.Errorf("aggregation table shown with one aggregation or missing with two:\n%s\n%s", one.String(), many.String())
	}
	if !strings.Contains(many.String(), "best drift/median layer: 5 (AUROC 0.900)") {
		t.Errorf("primary aggregation does not lead:\n%s", many.String())
	}
}
