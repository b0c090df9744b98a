package report

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// sentence is a small prompt with a line break and a whitespace token.
func sentence() []TokenScore {
	words := []string{"The", " cat", " sat", " on", " the", " mat", ".", "\n", "It", " purred", " ", " loudly", "!"}
	vals := []float64{0.12, 1.30, 0.50, 0.70, 0.30, 2.10, 0.90, 1.00, 0.40, 1.75, 0.05, 1.10, 1.60}
	ts := make([]TokenScore, len(words))
	for i, w := range words {
		ts[i] = TokenScore{Text: w, ID: i, Value: vals[i], Std: vals[i] / 10}
	}
	return ts
}

// wide mixes CJK, emoji and a token longer than a narrow line.
func wide() []TokenScore {
	return []TokenScore{
		{Text: "日本語", Value: 0.2},
		{Text: "の", Value: 0.9},
		{Text: "👍🏽", Value: 1.4},
		{Text: "🇯🇵", Value: 0.6},
		{Text: " supercalifragilistic", Value: 2.0},
		{Text: "ok", Value: 1.0},
	}
}

// hostile holds escape sequences, bidi controls and split UTF-8.
func hostile() []TokenScore {
	return []TokenScore{
		{Text: "rm", Value: 0.1},
		{Text: "\x1b[2J", Value: 3.0},
		{Text: "\x1b]0;title\x07", Value: 2.5},
		{Text: "\u202eevil", Value: 1.5},
		{Text: "\xe7\x8c", Value: 0.7},
		{Text: "\xab", Value: 0.8},
		{Text: "a\u200bb", Value: 1.0},
		{Text: "\t", Value: 0.4},
		{Text: "", Value: math.NaN()},
		{Text: "end", Value: 0.3},
	}
}

// newlines has tokens made of, ending with and containing line feeds.
func newlines() []TokenScore {
	return []TokenScore{
		{Text: "Hello", Value: 0.3},
		{Text: "\n", Value: 1.2},
		{Text: "\n\n", Value: 0.8},
		{Text: "world", Value: 0.6},
		{Text: ":\n", Value: 1.9},
		{Text: "a\nb", Value: 0.1},
		{Text: " end", Value: 1.0},
	}
}

var allModes = []Mode{ModeNone, ModeANSI16, ModeANSI256, ModeTrueColor}

func TestHeatmapGolden(t *testing.T) {
	label := "OOD score, hidden state 15 of 30"
	tests := []struct {
		name   string
		tokens []TokenScore
		opts   HeatmapOptions
	}{
		{"none", sentence(), HeatmapOptions{Mode: ModeNone, Label: label}},
		{"none_std", sentence(), HeatmapOptions{Mode: ModeNone, Label: label, ShowStd: true, Digits: 1}},
		{"ansi16", sentence(), HeatmapOptions{Mode: ModeANSI16, Label: label}},
		{"ansi256", sentence(), HeatmapOptions{Mode: ModeANSI256, Label: label}},
		{"truecolor", sentence(), HeatmapOptions{Mode: ModeTrueColor, Label: label}},
		{"truecolor_fg", sentence(), HeatmapOptions{Mode: ModeTrueColor, Foreground: true, Label: label}},
		{"truecolor_diverging_fixed", sentence(), HeatmapOptions{Mode: ModeTrueColor, Scale: ScaleDiverging, FixedRange: true, Min: 0, Max: 2}},
		{"ansi16_diverging", sentence(), HeatmapOptions{Mode: ModeANSI16, Scale: ScaleDiverging}},
		{"none_w20", sentence(), HeatmapOptions{Mode: ModeNone, Width: 20, Label: label}},
		{"truecolor_w20", sentence(), HeatmapOptions{Mode: ModeTrueColor, Width: 20, Label: label}},
		{"truecolor_w6", sentence(), HeatmapOptions{Mode: ModeTrueColor, Width: 6}},
		{"none_w3", sentence(), HeatmapOptions{Mode: ModeNone, Width: 3}},
		{"truecolor_w1", sentence(), HeatmapOptions{Mode: ModeTrueColor, Width: 1, NoLegend: true}},
		{"wide_none_w8", wide(), HeatmapOptions{Mode: ModeNone, Width: 8}},
		{"wide_truecolor_w8", wide(), HeatmapOptions{Mode: ModeTrueColor, Width: 8}},
		{"wide_ansi256_w5", wide(), HeatmapOptions{Mode: ModeANSI256, Width: 5}},
		{"wide_truecolor_w3", wide(), HeatmapOptions{Mode: ModeTrueColor, Width: 3, NoLegend: true}},
		{"hostile_none", hostile(), HeatmapOptions{Mode: ModeNone}},
		{"hostile_truecolor", hostile(), HeatmapOptions{Mode: ModeTrueColor, Width: 12}},
		{"newlines_none", newlines(), HeatmapOptions{Mode: ModeNone}},
		{"newlines_ansi256", newlines(), HeatmapOptions{Mode: ModeANSI256}},
		{"empty", nil, HeatmapOptions{Mode: ModeTrueColor}},
		{"all_nan_none", []TokenScore{{Text: "x", Value: math.NaN()}}, HeatmapOptions{Mode: ModeNone}},
		{"constant_truecolor", []TokenScore{{Text: "a", Value: 1}, {Text: "b", Value: 1}}, HeatmapOptions{Mode: ModeTrueColor}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Heatmap(&buf, tt.tokens, tt.opts); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "heatmap_"+tt.name, buf.Bytes())
		})
	}
}

func TestHeatmapNoneExample(t *testing.T) {
	var buf bytes.Buffer
	tokens := []TokenScore{{Text: "The", Value: 0.12}, {Text: " cat", Value: 1.30}}
	if err := Heatmap(&buf, tokens, HeatmapOptions{NoLegend: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "The[0.12] cat[1.30]\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestHeatmapInvariants checks, for many widths and every mode, that no line
// is wider than the width, that every coloured run is closed on its own
// line, that the only escapes are SGR codes, and that the text is intact.
func TestHeatmapInvariants(t *testing.T) {
	sets := map[string][]TokenScore{"sentence": sentence(), "wide": wide(), "hostile": hostile(), "newlines": newlines()}
	for name, tokens := range sets {
		var want strings.Builder
		for _, tk := range tokens {
			s := Sanitize(tk.Text)
			if tk.Text == "" {
				s = EmptyMark
			}
			want.WriteString(s)
		}
		for _, mode := range allModes[1:] {
			for width := 0; width <= 40; width++ {
				t.Run(fmt.Sprintf("%s/%s/%d", name, mode, width), func(t *testing.T) {
					var buf bytes.Buffer
					opts := HeatmapOptions{Mode: mode, Width: width, NoLegend: true}
					if err := Heatmap(&buf, tokens, opts); err != nil {
						t.Fatal(err)
					}
					out := buf.String()
					if !strings.HasSuffix(out, "\n") {
						t.Errorf("output does not end with a newline: %q", out)
					}
					for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
						plain := stripSGR(line)
						if strings.ContainsRune(plain, 0x1b) {
							t.Errorf("line %d holds a non-SGR escape: %q", i+1, line)
						}
						if w := clampWidth(width); w > 0 && displayWidth(plain) > w {
							t.Errorf("line %d is %d cells wide, limit %d: %q", i+1, displayWidth(plain), w, plain)
						}
						opens := len(sgr.FindAllString(line, -1)) - strings.Count(line, sgrReset)
						if opens != strings.Count(line, sgrReset) {
							t.Errorf("line %d: %d runs opened, %d reset: %q", i+1, opens, strings.Count(line, sgrReset), line)
						}
						if colourOpenAtEnd(line) {
							t.Errorf("line %d ends inside a coloured run: %q", i+1, line)
						}
					}
					got := strings.ReplaceAll(stripSGR(out), "\n", "")
					if got != want.String() {
						t.Errorf("text changed:\n got %q\nwant %q", got, want.String())
					}
				})
			}
		}
	}
}

// TestHeatmapNoneWidths checks plain output stays within narrow widths and
// keeps every score.
func TestHeatmapNoneWidths(t *testing.T) {
	for width := 1; width <= 30; width++ {
		var buf bytes.Buffer
		if err := Heatmap(&buf, wide(), HeatmapOptions{Width: width, NoLegend: true}); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
			if displayWidth(line) > clampWidth(width) {
				t.Errorf("width %d: line %q is %d cells", width, line, displayWidth(line))
			}
		}
		if n := strings.Count(strings.ReplaceAll(buf.String(), "\n", ""), "]"); n != len(wide()) {
			t.Errorf("width %d: %d scores, want %d", width, n, len(wide()))
		}
	}
}

type failWriter struct{}

var errWrite = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteErrors(t *testing.T) {
	if err := Heatmap(failWriter{}, sentence(), HeatmapOptions{}); !errors.Is(err, errWrite) {
		t.Errorf("Heatmap error = %v, want wrapped errWrite", err)
	}
	g := Grid{Tokens: []string{"a"}, Values: [][]float64{{1}}}
	if err := GridHeatmap(failWriter{}, g, GridOptions{}); !errors.Is(err, errWrite) {
		t.Errorf("GridHeatmap error = %v, want wrapped errWrite", err)
	}
	if err := WriteJSONL(failWriter{}, 1); !errors.Is(err, errWrite) {
		t.Errorf("WriteJSONL error = %v, want wrapped errWrite", err)
	}
}

// colourOpenAtEnd reports whether a colour set on line is still active at
// its end.
func colourOpenAtEnd(line string) bool {
	open := false
	for _, m := range sgr.FindAllString(line, -1) {
		open = m != sgrReset
	}
	return open
}
