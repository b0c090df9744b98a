package report

import (
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot"
)

func TestPlotLayersPNG(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "layers.png")
	series := sampleSeries()
	series = append(series, LayerSeries{Prompt: "hostile \x1b[2J\u202e prompt", Layers: []int{0, 2, 4}, Mean: []float64{0.5, 0.6, 0.55}})
	if err := PlotLayers(path, series, PlotOptions{Title: "ratio vs hidden state"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decoding PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() != 768 || b.Dy() != 480 {
		t.Errorf("size = %dx%d, want 768x480", b.Dx(), b.Dy())
	}
	colours := map[[4]uint32]int{}
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}]++
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
		}
	}
	if len(colours) < 10 {
		t.Errorf("only %d distinct colours", len(colours))
	}
	if frac := float64(nonWhite) / float64(b.Dx()*b.Dy()); frac < 0.01 {
		t.Errorf("only %.4f of pixels are not background", frac)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the plot (temp file left behind?)", len(entries))
	}
}

func TestPlotLayersErrors(t *testing.T) {
	dir := t.TempDir()
	nan := math.NaN()
	tests := []struct {
		name   string
		path   string
		series []LayerSeries
		want   error
	}{
		{"no series", filepath.Join(dir, "a.png"), nil, ErrNoData},
		{"all NaN", filepath.Join(dir, "b.png"), []LayerSeries{{Layers: []int{0, 1}, Mean: []float64{nan, nan}}}, ErrNoData},
		{"shape", filepath.Join(dir, "c.png"), []LayerSeries{{Layers: []int{0, 1}, Mean: []float64{1}}}, ErrSeriesShape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := PlotLayers(tt.path, tt.series, PlotOptions{}); !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(tt.path); !os.IsNotExist(err) {
				t.Errorf("%s exists after a failed plot", tt.path)
			}
		})
	}
	err := PlotLayers(filepath.Join(dir, "missing", "d.png"), sampleSeries(), PlotOptions{})
	if err == nil {
		t.Errorf("plot into a missing directory succeeded")
	}
}

func TestPlotText(t *testing.T) {
	fnt := plot.New().Legend.TextStyle.Font
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"x\u202ey", "x<U+202E>y"},
		{"tab\there", "tab→here"},
		{"long…", "long…"},
	}
	for _, tt := range tests {
		if got := plotText(Sanitize(tt.in), fnt); got != tt.want {
			t.Errorf("plotText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSeriesRuns(t *testing.T) {
	nan := math.NaN()
	s := LayerSeries{
		Layers: []int{0, 1, 2, 3, 4, 5},
		Mean:   []float64{1, 2, nan, 3, 4, math.Inf(1)},
		Std:    []float64{0.1, 0.1, 0.1, nan, 0.1, 0.1},
	}
	runs := seriesRuns(s)
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
	if len(runs[0].mean) != 2 || len(runs[1].mean) != 2 {
		t.Errorf("run lengths %d, %d, want 2, 2", len(runs[0].mean), len(runs[1].mean))
	}
	if got := len(runs[0].band()); got != 4 {
		t.Errorf("first band has %d points, want 4", got)
	}
	if got := runs[1].band(); got != nil {
		t.Errorf("second run has a NaN std but a band %v", got)
	}
}
