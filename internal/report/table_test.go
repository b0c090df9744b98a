package report

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func sampleRows() []PromptRow {
	return []PromptRow{
		{Prompt: "Eggplants are purple.", Tokens: 5, Ratio: 1.234, RatioStd: 0.051, OOD: -0.21},
		{Prompt: "Eggplants are fire-engine red.", Tokens: 8, Ratio: 0.987, RatioStd: 0.043, OOD: 0.35},
		{Prompt: "lsadfhl; wiffle jfdalkgy burh lgoi and then a much longer tail", Tokens: 17, Ratio: 0.612, RatioStd: 0.12, OOD: 1.8},
		{Prompt: "evil\x1b[2J\nprompt", Err: "context length exceeded"},
	}
}

func sampleSeries() []LayerSeries {
	return []LayerSeries{
		{Prompt: "Eggplants are purple.", Layers: []int{0, 1, 2, 3, 4}, Mean: []float64{1.0, 1.4, 1.9, 1.7, 1.2}, Std: []float64{0.1, 0.1, 0.2, 0.15, 0.1}},
		{Prompt: "lsadfhl; wiffle jfdalkgy burh lgoi", Layers: []int{0, 1, 2, 3, 4}, Mean: []float64{0.9, 1.0, 1.1, 1.0, 0.8}, Std: []float64{0.05, 0.1, 0.1, 0.1, 0.05}},
		{Prompt: "partial", Layers: []int{2, 4, 6}, Mean: []float64{1.5, math.NaN(), 1.3}},
	}
}

func TestTableGolden(t *testing.T) {
	tests := []struct {
		name string
		rows []PromptRow
		opts TableOptions
	}{
		{"unicode", sampleRows(), TableOptions{PromptWidth: 30}},
		{"ascii", sampleRows(), TableOptions{Style: TableASCII, PromptWidth: 30, Digits: 2}},
		{"markdown", sampleRows()[:3], TableOptions{Style: TableMarkdown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Table(&buf, tt.rows, tt.opts); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "table_"+tt.name, buf.Bytes())
			if bytes.ContainsRune(buf.Bytes(), 0x1b) {
				t.Errorf("table holds an escape character")
			}
		})
	}
}

func TestLayerTableGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := LayerTable(&buf, sampleSeries(), TableOptions{PromptWidth: 20, Digits: 2}); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "layertable", buf.Bytes())
}

func TestLayerTableShape(t *testing.T) {
	bad := []LayerSeries{{Prompt: "x", Layers: []int{0, 1}, Mean: []float64{1}}}
	if err := LayerTable(&bytes.Buffer{}, bad, TableOptions{}); !errors.Is(err, ErrSeriesShape) {
		t.Errorf("error = %v, want ErrSeriesShape", err)
	}
	bad = []LayerSeries{{Prompt: "x", Layers: []int{0}, Mean: []float64{1}, Std: []float64{1, 2}}}
	if err := LayerTable(&bytes.Buffer{}, bad, TableOptions{}); !errors.Is(err, ErrSeriesShape) {
		t.Errorf("error = %v, want ErrSeriesShape", err)
	}
}

func TestSparkline(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name string
		in   []float64
		want string
	}{
		{"empty", nil, ""},
		{"one", []float64{3}, "▄"},
		{"constant", []float64{2, 2, 2}, "▄▄▄"},
		{"ramp", []float64{0, 1, 2, 3, 4, 5, 6, 7}, "▁▂▃▄▅▆▇█"},
		{"two", []float64{1, 5}, "▁█"},
		{"negative", []float64{-1, 0, 1}, "▁▅█"},
		{"nan", []float64{1, nan, 3}, "▁ █"},
		{"all nan", []float64{nan, nan}, "  "},
		{"inf", []float64{inf, 1, 2}, " ▁█"},
		{"constant with nan", []float64{1, nan, 1}, "▄ ▄"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sparkline(tt.in); got != tt.want {
				t.Errorf("Sparkline(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTextTableGolden(t *testing.T) {
	header := []string{"kind", "plain", "ratio", "odd twin", "ratio", "twin − plain"}
	rows := [][]string{
		{"colour", "Eggplants are purple.", "1.234 ± 0.050", "Eggplants are fire-engine red.", "0.987 ± 0.040", "-0.247"},
		{"mash", "The cat sat on the mat.", "1.100 ± 0.020", "lsadfhl; wiffle jfdalkgy burh lgoi", "error: tokenizer \x1b[31mfailed", ""},
		{"short"},
	}
	var buf bytes.Buffer
	if err := TextTable(&buf, header, rows, TableOptions{PromptWidth: 24}); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "texttable", buf.Bytes())
	if bytes.ContainsRune(buf.Bytes(), 0x1b) {
		t.Errorf("table holds an escape character")
	}
}

func TestLooksNumeric(t *testing.T) {
	tests := map[string]bool{"1.5": true, "-0.2": true, "+0.3": true, "1.2 ± 0.1": true, "NaN": true, "abc": false, "1.2 ± x": false, "error: x": false}
	for in, want := range tests {
		if got := looksNumeric(in); got != want {
			t.Errorf("looksNumeric(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestTableSamplesColumn: rows that carry the nudges used (adaptive K) get
// a K column; rows without it keep the table as it was.
func TestTableSamplesColumn(t *testing.T) {
	rows := []PromptRow{
		{Prompt: "a", Tokens: 2, Ratio: 0.5, RatioStd: 0.1, OOD: -0.69, Samples: 8},
		{Prompt: "b", Tokens: 3, Ratio: 0.6, RatioStd: 0.1, OOD: -0.51, Samples: 32},
		{Prompt: "c", Err: "boom"},
	}
	var with, without bytes.Buffer
	if err := Table(&with, rows, TableOptions{}); err != nil {
		t.Fatal(err)
	}
	plain := append([]PromptRow(nil), rows...)
	for i := range plain {
		plain[i].Samples = 0
	}
	if err := Table(&without, plain, TableOptions{}); err != nil {
		t.Fatal(err)
	}
	header := strings.SplitN(with.String(), "\n", 3)[1]
	if !strings.Contains(header, " K ") || strings.Contains(strings.SplitN(without.String(), "\n", 3)[1], " K ") {
		t.Errorf("K column missing or shown without samples:\n%s\n%s", with.String(), without.String())
	}
	if !strings.Contains(with.String(), " 32 ") || !strings.Contains(with.String(), "boom") {
		t.Errorf("rows:\n%s", with.String())
	}
}

// TestTableSurprisalColumn: rows that carry the model's surprisal (score
// --surprisal) get a surprisal column, "-" where a row has none (one
// token, or an error); rows without it keep the table as it was.
func TestTableSurprisalColumn(t *testing.T) {
	v := 5.4321
	rows := []PromptRow{
		{Prompt: "a b", Tokens: 2, Ratio: 0.5, RatioStd: 0.1, OOD: -0.69, Surprisal: &v},
		{Prompt: "c", Tokens: 1, Ratio: 0.6, RatioStd: 0.1, OOD: -0.51},
		{Prompt: "d", Err: "boom"},
	}
	for _, tc := range []struct {
		name string
		rows []PromptRow
		want []string // header cells in order, after "OOD score"
	}{
		{"with", rows, []string{"surprisal", "error"}},
		{"without", []PromptRow{rows[1], rows[2]}, []string{"error"}},
	} {
		var buf bytes.Buffer
		if err := Table(&buf, tc.rows, TableOptions{}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(buf.String(), "\n")
		header := strings.FieldsFunc(lines[1], func(r rune) bool { return r == '│' })
		var after []string
		for i, h := range header {
			if strings.TrimSpace(h) == "OOD score" {
				for _, c := range header[i+1:] {
					after = append(after, strings.TrimSpace(c))
				}
			}
		}
		if strings.Join(after, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: header %q, want %q after OOD score:\n%s", tc.name, after, tc.want, buf.String())
		}
		if tc.name == "with" {
			for i, want := range []string{"5.432", "-", "-"} {
				cells := strings.FieldsFunc(lines[3+i], func(r rune) bool { return r == '│' })
				if got := strings.TrimSpace(cells[5]); got != want {
					t.Errorf("row %d surprisal cell %q, want %q:\n%s", i+1, got, want, buf.String())
				}
			}
		}
	}
}
