package report

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func sampleGrid() Grid {
	tokens := []string{"The", " cat", "\n", "\x1b[2J", "日本語テキスト", " sat"}
	layers := []int{0, 5, 10, 15}
	values := make([][]float64, len(layers))
	for i := range layers {
		values[i] = make([]float64, len(tokens))
		for j := range tokens {
			values[i][j] = float64(i+1) * (0.2 + 0.3*float64(j))
		}
	}
	values[2][3] = math.NaN()
	return Grid{Tokens: tokens, Layers: layers, Values: values}
}

func TestGridHeatmapGolden(t *testing.T) {
	label := "ratio per hidden state"
	tests := []struct {
		name string
		grid Grid
		opts GridOptions
	}{
		{"none", sampleGrid(), GridOptions{Label: label}},
		{"ansi16", sampleGrid(), GridOptions{Mode: ModeANSI16, Label: label}},
		{"ansi256", sampleGrid(), GridOptions{Mode: ModeANSI256, Label: label}},
		{"truecolor", sampleGrid(), GridOptions{Mode: ModeTrueColor, Label: label}},
		{"truecolor_values", sampleGrid(), GridOptions{Mode: ModeTrueColor, ShowValues: true, ColumnWidth: 5}},
		{"truecolor_fg", sampleGrid(), GridOptions{Mode: ModeTrueColor, Foreground: true, ColumnWidth: 3}},
		{"none_bands_w30", sampleGrid(), GridOptions{Width: 30, Digits: 1}},
		{"truecolor_bands_w1", sampleGrid(), GridOptions{Mode: ModeTrueColor, Width: 1, NoLegend: true}},
		{"default_layers", Grid{Tokens: []string{"a", "b"}, Values: [][]float64{{1, 2}, {3, 4}}}, GridOptions{}},
		{"empty", Grid{}, GridOptions{Mode: ModeTrueColor}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := GridHeatmap(&buf, tt.grid, tt.opts); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "grid_"+tt.name, buf.Bytes())
			for i, line := range strings.Split(buf.String(), "\n") {
				if colourOpenAtEnd(line) {
					t.Errorf("line %d ends inside a coloured run: %q", i+1, line)
				}
				if strings.ContainsRune(stripSGR(line), 0x1b) {
					t.Errorf("line %d holds a non-SGR escape: %q", i+1, line)
				}
			}
		})
	}
}

func TestGridHeatmapShape(t *testing.T) {
	tests := []struct {
		name string
		grid Grid
	}{
		{"layers vs rows", Grid{Tokens: []string{"a"}, Layers: []int{1, 2}, Values: [][]float64{{1}}}},
		{"ragged row", Grid{Tokens: []string{"a", "b"}, Values: [][]float64{{1, 2}, {3}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := GridHeatmap(&bytes.Buffer{}, tt.grid, GridOptions{})
			if !errors.Is(err, ErrGridShape) {
				t.Errorf("error = %v, want ErrGridShape", err)
			}
		})
	}
}
