package report

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PlotOptions controls PlotLayers. The zero value is usable.
type PlotOptions struct {
	// Title is drawn above the plot (default "Distortion ratio by hidden
	// state").
	Title string
	// XLabel and YLabel name the axes (defaults "hidden-state index" and
	// "distortion ratio").
	XLabel, YLabel string
	// Width and Height are the image size (default 8 × 5 inches, which is
	// 768 × 480 pixels in PNG).
	Width, Height vg.Length
	// LegendWidth is the widest a prompt is shown in the legend, in
	// characters, before it is cut with "…" (default 40).
	LegendWidth int
	// NoBand omits the translucent ±std band around each line.
	NoBand bool
}

// ErrNoData is returned (wrapped) by PlotLayers when no series has a
// single finite value to draw.
var ErrNoData = errors.New("nothing to plot")

// palette is a set of colours that stay distinct for common colour-vision
// deficiencies (the Okabe–Ito palette).
var palette = []color.NRGBA{
	{0x00, 0x72, 0xb2, 0xff}, // blue
	{0xd5, 0x5e, 0x00, 0xff}, // vermillion
	{0x00, 0x9e, 0x73, 0xff}, // bluish green
	{0xcc, 0x79, 0xa7, 0xff}, // reddish purple
	{0xe6, 0x9f, 0x00, 0xff}, // orange
	{0x56, 0xb4, 0xe9, 0xff}, // sky blue
	{0xf0, 0xe4, 0x42, 0xff}, // yellow
	{0x00, 0x00, 0x00, 0xff}, // black
}

// PlotLayers draws the ratio against the hidden-state index, one line per
// prompt with a translucent ±std band, a legend of the (sanitized,
// truncated) prompts, axis labels and a title, and writes the image to path.
// The format follows the extension (.png, .svg, .pdf, .jpg, .eps, .tif;
// anything else is written as PNG). The file is written atomically: to a
// temporary file in the same directory, then renamed over path.
// Non-finite points are skipped.
func PlotLayers(path string, series []LayerSeries, opts PlotOptions) error {
	if opts.Title == "" {
		opts.Title = "Distortion ratio by hidden state"
	}
	if opts.XLabel == "" {
		opts.XLabel = "hidden-state index"
	}
	if opts.YLabel == "" {
		opts.YLabel = "distortion ratio"
	}
	if opts.Width <= 0 {
		opts.Width = 8 * vg.Inch
	}
	if opts.Height <= 0 {
		opts.Height = 5 * vg.Inch
	}
	if opts.LegendWidth <= 0 {
		opts.LegendWidth = 40
	}

	p := plot.New()
	fnt := p.Legend.TextStyle.Font
	p.Title.Text = plotText(Sanitize(opts.Title), fnt)
	p.X.Label.Text = plotText(Sanitize(opts.XLabel), fnt)
	p.Y.Label.Text = plotText(Sanitize(opts.YLabel), fnt)
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = false

	drawn := 0
	for i, s := range series {
		if err := s.check(); err != nil {
			return fmt.Errorf("report: plot series %d: %w", i+1, err)
		}
		runs := seriesRuns(s)
		if len(runs) == 0 {
			continue
		}
		col := palette[i%len(palette)]
		for k, run := range runs {
			if band := run.band(); len(band) > 2 && !opts.NoBand {
				poly, err := plotter.NewPolygon(band)
				if err != nil {
					return fmt.Errorf("report: plot band %d: %w", i+1, err)
				}
				fill := col
				fill.A = 0x40
				poly.Color = fill
				poly.LineStyle.Width = 0
				p.Add(poly)
			}
			var thumb plot.Thumbnailer
			if len(run.mean) == 1 {
				// A lone point draws no line: mark it.
				sc, err := plotter.NewScatter(run.mean)
				if err != nil {
					return fmt.Errorf("report: plot point %d: %w", i+1, err)
				}
				sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}
				p.Add(sc)
				thumb = sc
			} else {
				l, err := plotter.NewLine(run.mean)
				if err != nil {
					return fmt.Errorf("report: plot line %d: %w", i+1, err)
				}
				l.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(1.5)}
				p.Add(l)
				thumb = l
			}
			if k == 0 {
				p.Legend.Add(plotText(legendText(s.Prompt, opts.LegendWidth), fnt), thumb)
			}
		}
		drawn++
	}
	if drawn == 0 {
		return fmt.Errorf("report: plot %s: %w", path, ErrNoData)
	}

	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	switch format {
	case "png", "svg", "pdf", "jpg", "jpeg", "eps", "tif", "tiff":
	default:
		format = "png"
	}
	wt, err := p.WriterTo(opts.Width, opts.Height, format)
	if err != nil {
		return fmt.Errorf("report: drawing plot: %w", err)
	}
	return writeAtomic(path, func(f *os.File) error {
		_, err := wt.WriteTo(f)
		return err
	})
}

// run is a stretch of consecutive finite points of a series.
type run struct {
	mean       plotter.XYs
	upper, low plotter.XYs // ±std edges; empty when the series has no Std
}

// band returns the outline of the ±std band: the upper edge left to right,
// then the lower edge back.
func (r run) band() plotter.XYs {
	if len(r.upper) != len(r.mean) {
		return nil
	}
	out := append(plotter.XYs(nil), r.upper...)
	for j := len(r.low) - 1; j >= 0; j-- {
		out = append(out, r.low[j])
	}
	return out
}

// seriesRuns splits a series into runs of finite points, so a NaN breaks
// the line instead of being bridged. A run whose std is not finite
// everywhere gets no band.
func seriesRuns(s LayerSeries) []run {
	var runs []run
	var cur run
	end := func() {
		if len(cur.mean) > 0 {
			runs = append(runs, cur)
		}
		cur = run{}
	}
	for j, l := range s.Layers {
		m := s.Mean[j]
		if math.IsNaN(m) || math.IsInf(m, 0) {
			end()
			continue
		}
		x := float64(l)
		cur.mean = append(cur.mean, plotter.XY{X: x, Y: m})
		if s.Std != nil {
			if sd := s.Std[j]; !math.IsNaN(sd) && !math.IsInf(sd, 0) {
				cur.upper = append(cur.upper, plotter.XY{X: x, Y: m + sd})
				cur.low = append(cur.low, plotter.XY{X: x, Y: m - sd})
			}
		}
	}
	end()
	return runs
}

// legendText prepares a prompt for the plot legend: sanitized, on one
// line, cut to width cells.
func legendText(prompt string, width int) string {
	if prompt == "" {
		return EmptyMark
	}
	return truncate(Sanitize(prompt), width)
}

// plotText makes sanitized text drawable with the plot's font: characters
// the font has no glyph for are spelled out in ASCII (control pictures as
// `\xNN`, "⟨U+XXXX⟩" as "<U+XXXX>", anything else as "<U+XXXX>").
func plotText(s string, fnt font.Font) string {
	face := font.DefaultCache.Lookup(fnt, fnt.Size)
	has := func(r rune) bool {
		if face.Face == nil {
			return r < 0x80
		}
		gi, err := face.Face.GlyphIndex(nil, r)
		return err == nil && gi != 0
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case has(r):
			b.WriteRune(r)
		case r >= 0x2400 && r < 0x2420:
			fmt.Fprintf(&b, `\x%02x`, r-0x2400)
		case r == 0x2421:
			b.WriteString(`\x7f`)
		case r == '⟨':
			b.WriteByte('<')
		case r == '⟩':
			b.WriteByte('>')
		default:
			fmt.Fprintf(&b, "<U+%04X>", r)
		}
	}
	return b.String()
}

// writeAtomic writes a file through write into a temporary file next to
// path and renames it into place, so readers never see a partial file.
func writeAtomic(path string, write func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("report: creating temporary file for %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return fmt.Errorf("report: writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("report: syncing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("report: closing %s: %w", path, err)
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("report: setting mode of %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("report: renaming %s into place: %w", path, err)
	}
	return nil
}
