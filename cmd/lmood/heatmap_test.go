package main

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/arch/nn"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/testutil"
	"github.com/lmood/lmood/internal/testutil/golden"
)

func init() {
	// -update rewrites testdata/*.golden. Another test file of this package
	// may register the same flag as a package variable; it is then shared.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files in testdata/")
	}
}

// wantUpdate reports whether the test runs with -update.
func wantUpdate() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// cmdGolden compares got with testdata/<name>.golden, or rewrites the file
// with -update.
func cmdGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name, got, wantUpdate())
}

// sgrRun matches the colour codes report writes; nothing else may reach
// the terminal.
var sgrRun = regexp.MustCompile("\x1b\\[[0-9;]*m")

// assertTerminalSafe fails when out holds a control character other than
// a line feed, once report's own SGR colour codes are removed, or leaves a
// colour open at the end of a line.
func assertTerminalSafe(t *testing.T, out string) {
	t.Helper()
	for i, line := range strings.Split(out, "\n") {
		plain := sgrRun.ReplaceAllString(line, "")
		for _, r := range plain {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u202e' || r == '\u200b' || r == '\u2066' {
				t.Fatalf("line %d holds raw control or invisible character %U: %q", i+1, r, line)
			}
		}
		if codes := sgrRun.FindAllString(line, -1); len(codes) > 0 && codes[len(codes)-1] != "\x1b[0m" {
			t.Fatalf("line %d leaves a colour open: %q", i+1, line)
		}
	}
}

// fakeResult builds an analysis of the given tokens at hidden states hs:
// token t at layer h has ratio ratios[t] * (1 + h/10) (std a tenth of it),
// and the prompt-level ratio is the mean over tokens 1.. .
func fakeResult(prompt string, texts []string, ratios []float64, hs []int) *analyze.Result {
	res := &analyze.Result{Prompt: prompt, FirstToken: "excluded", Selected: len(texts) - 1}
	if len(texts) == 1 {
		// As analyze does: the only token is counted.
		res.FirstToken, res.Selected = "included (only token)", 1
	}
	for i, s := range texts {
		res.Tokens = append(res.Tokens, analyze.Token{ID: 100 + i, Text: s})
	}
	res.InputAngle = analyze.Stat{Mean: 0.57, Std: 0.01, Defined: true}
	for _, h := range hs {
		l := analyze.Layer{Index: h}
		scale := 1 + float64(h)/10
		var sum float64
		for i, r := range ratios {
			v := r * scale
			l.TokenRatio = append(l.TokenRatio, analyze.Stat{Mean: v, Std: v / 10, Defined: true})
			l.TokenDrift = append(l.TokenDrift, analyze.Stat{Mean: v * 0.57, Std: v / 20, Defined: true})
			if i > 0 || len(ratios) == 1 {
				sum += v
			}
		}
		m := sum / float64(res.Selected)
		l.Ratio = analyze.Stat{Mean: m, Std: m / 10, Defined: true}
		l.Drift = analyze.Stat{Mean: m * 0.57, Std: m / 20, Defined: true}
		res.Layers = append(res.Layers, l)
	}
	return res
}

// eggplant is "Eggplants are fire-engine red." with an extreme position 0,
// as the real model gives.
func eggplant(hs ...int) *analyze.Result {
	return fakeResult("Eggplants are fire-engine red.",
		[]string{"Egg", "plants", " are", " fire", "-", "engine", " red", "."},
		[]float64{0.004, 0.51, 0.31, 0.46, 0.41, 0.94, 0.55, 0.29}, hs)
}

// hostileResult holds escape sequences, bidi and zero-width characters, a
// bell, a line feed and a token longer than a narrow terminal.
func hostileResult(hs ...int) *analyze.Result {
	return fakeResult("clear\x1b[2J\u202eevil\u200b\x07\nsupercalifragilisticexpialidocious",
		[]string{"clear", "\x1b[2J", "\u202eevil", "\u200b", "\x07", "\n", "supercalifragilisticexpialidocious", "\x1b]0;pwned\x07", "日本語"},
		[]float64{1.2, 0.3, 0.8, 0.5, 0.9, 0.4, 0.7, 0.6, 1.1}, hs)
}

// undefinedToken is eggplant with no valid nudge for " fire" and none for
// the prompt as a whole.
func undefinedToken() *analyze.Result {
	r := eggplant(15)
	r.Layers[0].TokenRatio[3] = analyze.Stat{Invalid: 8}
	r.Layers[0].Ratio = analyze.Stat{Invalid: 8}
	return r
}

func TestRenderHeatmapGolden(t *testing.T) {
	tests := []struct {
		name string
		res  *analyze.Result
		st   heatmapStyle
	}{
		{"none", eggplant(15), heatmapStyle{Mode: report.ModeNone, Width: 80, Value: valueOOD}},
		{"ansi16", eggplant(15), heatmapStyle{Mode: report.ModeANSI16, Width: 80, Value: valueOOD}},
		{"ansi256", eggplant(15), heatmapStyle{Mode: report.ModeANSI256, Width: 80, Value: valueOOD}},
		{"truecolor", eggplant(15), heatmapStyle{Mode: report.ModeTrueColor, Width: 80, Value: valueOOD}},
		{"truecolor_ratio", eggplant(15), heatmapStyle{Mode: report.ModeTrueColor, Width: 80, Value: valueRatio}},
		{"truecolor_expand", eggplant(15), heatmapStyle{Mode: report.ModeTrueColor, Width: 80, Value: valueOOD, Direction: drift.Expand}},
		{"truecolor_include_first", eggplant(15), heatmapStyle{Mode: report.ModeTrueColor, Width: 80, Value: valueOOD, IncludeFirst: true}},
		{"truecolor_fixed", eggplant(15), heatmapStyle{Mode: report.ModeTrueColor, Width: 80, Value: valueOOD, Fixed: true, Min: -1, Max: 3}},
		{"none_isolate", eggplant(15), heatmapStyle{Mode: report.ModeNone, Width: 80, Value: valueRatio, Isolate: true}},
		{"none_w20", eggplant(15), heatmapStyle{Mode: report.ModeNone, Width: 20, Value: valueOOD, Digits: 1}},
		{"truecolor_w12", eggplant(15), heatmapStyle{Mode: report.ModeTrueColor, Width: 12, Value: valueOOD}},
		{"truecolor_w1", eggplant(15), heatmapStyle{Mode: report.ModeTrueColor, Width: 1, Value: valueOOD}},
		{"hostile_none", hostileResult(15), heatmapStyle{Mode: report.ModeNone, Width: 40, Value: valueOOD}},
		{"hostile_truecolor_w8", hostileResult(15), heatmapStyle{Mode: report.ModeTrueColor, Width: 8, Value: valueOOD}},
		{"hostile_ansi256_nowrap", hostileResult(15), heatmapStyle{Mode: report.ModeANSI256, Value: valueRatio}},
		{"undefined_token_truecolor", undefinedToken(), heatmapStyle{Mode: report.ModeTrueColor, Width: 80, Value: valueOOD}},
		{"undefined_token_none", undefinedToken(), heatmapStyle{Mode: report.ModeNone, Width: 80, Value: valueOOD}},
		{"one_token", fakeResult("Hi", []string{"Hi"}, []float64{0.8}, []int{15}), heatmapStyle{Mode: report.ModeTrueColor, Width: 80, Value: valueOOD}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.st.NumLayers = 30
			var buf bytes.Buffer
			if err := renderHeatmap(&buf, 1, tc.res, 15, tc.st); err != nil {
				t.Fatal(err)
			}
			assertTerminalSafe(t, buf.String())
			cmdGolden(t, "heatmap_"+tc.name, buf.Bytes())
		})
	}
}

func TestRenderGridGolden(t *testing.T) {
	all := allHiddenStates(6)
	withZero := append([]int{0}, all...)
	tests := []struct {
		name string
		res  *analyze.Result
		st   heatmapStyle
	}{
		{"none", eggplant(all...), heatmapStyle{Mode: report.ModeNone, Value: valueOOD}},
		{"none_skips_h0", eggplant(withZero...), heatmapStyle{Mode: report.ModeNone, Value: valueRatio}},
		{"ansi16", eggplant(all...), heatmapStyle{Mode: report.ModeANSI16, Value: valueOOD}},
		{"ansi256", eggplant(all...), heatmapStyle{Mode: report.ModeANSI256, Value: valueOOD}},
		{"truecolor", eggplant(all...), heatmapStyle{Mode: report.ModeTrueColor, Value: valueOOD}},
		{"truecolor_w40", eggplant(all...), heatmapStyle{Mode: report.ModeTrueColor, Width: 40, Value: valueOOD}},
		{"hostile_truecolor_w1", hostileResult(1, 2), heatmapStyle{Mode: report.ModeTrueColor, Width: 1, Value: valueOOD}},
		{"hostile_none", hostileResult(1, 2), heatmapStyle{Mode: report.ModeNone, Width: 80, Value: valueOOD}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.st.NumLayers, tc.st.Resid0 = 6, nn.TokenRow
			var buf bytes.Buffer
			if err := renderGrid(&buf, 1, tc.res, tc.st); err != nil {
				t.Fatal(err)
			}
			assertTerminalSafe(t, buf.String())
			cmdGolden(t, "grid_"+tc.name, buf.Bytes())
		})
	}
}

func TestRenderHeatmapErrors(t *testing.T) {
	st := heatmapStyle{Mode: report.ModeNone, Value: valueOOD, NumLayers: 30}
	var buf bytes.Buffer
	if err := renderHeatmap(&buf, 1, eggplant(15), 14, st); err == nil {
		t.Error("missing hidden state: want an error")
	}
	bad := eggplant(15)
	bad.Layers[0].TokenRatio = bad.Layers[0].TokenRatio[:2]
	if err := renderHeatmap(&buf, 1, bad, 15, st); err == nil {
		t.Error("ragged per-token ratios: want an error")
	}
	if err := renderGrid(&buf, 1, eggplant(0), st); err == nil {
		t.Error("grid with only hidden state 0: want an error")
	}
}

func TestTokenValue(t *testing.T) {
	tests := []struct {
		name string
		st   heatmapStyle
		in   analyze.Stat
		want float64
	}{
		{"ratio", heatmapStyle{Value: valueRatio}, analyze.Stat{Mean: 0.5, Defined: true}, 0.5},
		{"ood pinch", heatmapStyle{Value: valueOOD}, analyze.Stat{Mean: 0.5, Defined: true}, math.Ln2},
		{"ood expand", heatmapStyle{Value: valueOOD, Direction: drift.Expand}, analyze.Stat{Mean: 0.5, Defined: true}, -math.Ln2},
		{"undefined", heatmapStyle{Value: valueOOD}, analyze.Stat{Invalid: 3}, math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.st.tokenValue(tc.in)
			if math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tc.want) > 1e-12) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHeatmapFlagsStyle(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	tests := []struct {
		name    string
		hf      heatmapFlags
		want    heatmapStyle
		wantErr bool
	}{
		{"auto honours NO_COLOR", heatmapFlags{value: "ood", color: "auto", width: 80, digits: 2}, heatmapStyle{Mode: report.ModeNone, Width: 80, Value: valueOOD, Digits: 2}, false},
		{"256", heatmapFlags{value: "ratio", color: "256", width: 0, digits: 3}, heatmapStyle{Mode: report.ModeANSI256, Value: valueRatio, Digits: 3}, false},
		{"16", heatmapFlags{value: "OOD", color: "16", width: 5, digits: 2}, heatmapStyle{Mode: report.ModeANSI16, Width: 5, Value: valueOOD, Digits: 2}, false},
		{"truecolor range", heatmapFlags{value: "ood", color: "truecolor", digits: 2, scale: "-1:2.5"}, heatmapStyle{Mode: report.ModeTrueColor, Value: valueOOD, Digits: 2, Fixed: true, Min: -1, Max: 2.5}, false},
		{"bad value", heatmapFlags{value: "surprisal", color: "none", digits: 2}, heatmapStyle{}, true},
		{"bad colour", heatmapFlags{value: "ood", color: "rainbow", digits: 2}, heatmapStyle{}, true},
		{"negative width", heatmapFlags{value: "ood", color: "none", width: -1, digits: 2}, heatmapStyle{}, true},
		{"bad digits", heatmapFlags{value: "ood", color: "none", digits: 0}, heatmapStyle{}, true},
		{"bad range order", heatmapFlags{value: "ood", color: "none", digits: 2, scale: "3:1"}, heatmapStyle{}, true},
		{"bad range", heatmapFlags{value: "ood", color: "none", digits: 2, scale: "1"}, heatmapStyle{}, true},
		{"NaN range", heatmapFlags{value: "ood", color: "none", digits: 2, scale: "NaN:1"}, heatmapStyle{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.hf.style(os.Stdout)
			if tc.wantErr {
				var ue usageError
				if !errors.As(err, &ue) {
					t.Fatalf("want a usage error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHeatmapCmdUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"grid with layer", []string{"heatmap", "--grid", "--layer", "3", "x"}},
		{"bad colour", []string{"heatmap", "--color", "rainbow", "x"}},
		{"bad samples", []string{"heatmap", "-k", "0", "x"}},
		{"args and file", []string{"heatmap", "-f", "prompts.txt", "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCmd()
			root.SetArgs(tc.args)
			root.SetOut(&bytes.Buffer{})
			root.SetErr(&bytes.Buffer{})
			err := root.Execute()
			if exitCode(err) != 2 {
				t.Fatalf("want a usage error (exit 2), got %v", err)
			}
		})
	}
}

// TestHeatmapRealModel runs the heatmap and the grid on the real model with
// a hostile prompt, a prompt over --max-tokens and an empty one.
func TestHeatmapRealModel(t *testing.T) {
	m := testutil.RealModel(t)
	defer m.Close()
	g := &globals{quiet: true}
	prompts := []string{
		"Eggplants are purple.\x1b[2J\u202e\u200b",
		strings.Repeat("word ", 40),
		"   ",
	}
	for _, grid := range []bool{false, true} {
		hf := heatmapFlags{layer: -1, grid: grid}
		hf.af = analysisFlags{samples: 4, sigma: defaultSigma, seed: 1, noise: "per-token", direction: "pinch", maxTokens: 16}
		var buf bytes.Buffer
		st := heatmapStyle{Mode: report.ModeTrueColor, Width: 40, Value: valueOOD}
		err := runHeatmap(g, &hf, st, m, prompts, &buf)
		var pe *partialError
		if !errors.As(err, &pe) || pe.failed != 2 || pe.total != 3 {
			t.Fatalf("grid=%v: want 2 of 3 prompts failed, got %v", grid, err)
		}
		out := buf.String()
		assertTerminalSafe(t, out)
		plain := sgrRun.ReplaceAllString(out, "")
		wants := []string{"␛", "[1] "}
		if !grid {
			// Grid column labels are truncated; the heatmap shows all text.
			wants = append(wants, "⟨U+202E⟩", "⟨U+200B⟩")
		}
		for _, want := range wants {
			if !strings.Contains(plain, want) {
				t.Errorf("grid=%v: output lacks %q:\n%s", grid, want, out)
			}
		}
		if grid {
			if !strings.Contains(out, "hidden states 1..30 of 30") {
				t.Errorf("grid legend does not name hidden states 1..30:\n%s", out)
			}
		} else if !strings.Contains(out, "hidden state 15 of 30") {
			t.Errorf("heatmap legend does not name hidden state 15:\n%s", out)
		}
	}
}

// TestRenderHeatmapGroupsSplitCharacters: byte-level tokens that split a
// Cyrillic letter and an emoji are shown as the characters, with the mean
// of their scores, not as \xd0 pieces.
func TestRenderHeatmapGroupsSplitCharacters(t *testing.T) {
	ka, emoji := "К", "😀"
	res := fakeResult("Кот 😀", []string{ka[:1], ka[1:], "от", " " + emoji[:2], emoji[2:]},
		[]float64{1, 2, 3, 4, 8}, []int{15})
	var buf bytes.Buffer
	st := heatmapStyle{Mode: report.ModeNone, Width: 80, Value: valueRatio, NumLayers: 30}
	if err := renderHeatmap(&buf, 1, res, 15, st); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// Ratios at hidden state 15 are 2.5x the given ones; groups show the mean.
	for _, want := range []string{"К[3.75]", "от[7.50]", " 😀[15.00]", "split across tokens shows their mean"} {
		if !strings.Contains(out, want) {
			t.Errorf("heatmap lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `\x`) {
		t.Errorf("heatmap still shows byte escapes:\n%s", out)
	}
}

// TestRenderGridGroupsSplitCharacters: the grid merges the columns of
// byte-level tokens that split a character, as the one-row heatmap does:
// one column per character, each row the mean of its tokens' values.
func TestRenderGridGroupsSplitCharacters(t *testing.T) {
	ka, emoji := "К", "😀"
	res := fakeResult("Кот 😀", []string{ka[:1], ka[1:], "от", " " + emoji[:2], emoji[2:]},
		[]float64{1, 2, 3, 4, 8}, []int{10, 20})
	var buf bytes.Buffer
	st := heatmapStyle{Mode: report.ModeNone, Width: 80, Value: valueRatio, NumLayers: 20, Resid0: nn.TokenRow}
	if err := renderGrid(&buf, 1, res, st); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// Ratios at hidden state 10 are 2x the given ones, at 20 3x: the
	// split letter's column shows 3.00 and 4.50, the emoji's 12.00, 18.00.
	var header string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "layer") {
			header = line
		}
	}
	if got := strings.Fields(header); len(got) != 4 || got[1] != ka || got[2] != "от" || got[3] != emoji {
		t.Errorf("grid columns %q, want К, от, 😀:\n%s", got, out)
	}
	for _, want := range []string{"3.00", "4.50", "12.00", "18.00", "split across tokens shows their mean"} {
		if !strings.Contains(out, want) {
			t.Errorf("grid lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `\x`) {
		t.Errorf("grid still shows byte escapes:\n%s", out)
	}
}
