package report

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Grid holds one value per (hidden state, token) pair.
type Grid struct {
	// Tokens are the column labels (raw token text; sanitized when drawn).
	Tokens []string
	// Layers are the hidden-state indices of the rows; nil means 0, 1, ….
	Layers []int
	// Values is indexed [layer][token].
	Values [][]float64
}

// GridOptions controls GridHeatmap. The zero value prints numbers, 6 cells
// per column, without wrapping.
type GridOptions struct {
	// Mode selects the colour encoding; ModeNone prints numbers.
	Mode Mode
	// Scale, Foreground, FixedRange, Min and Max work as in HeatmapOptions.
	Scale      Scale
	Foreground bool
	FixedRange bool
	Min, Max   float64
	// ColumnWidth is the width of each token column in cells (default 6).
	// Token labels longer than that are truncated with "…".
	ColumnWidth int
	// Width is the terminal width; when the grid is wider, the token columns
	// are split into bands printed one below the other. 0 disables this.
	Width int
	// Digits is the number of decimals printed (default 2).
	Digits int
	// ShowValues prints the numbers inside the coloured cells too.
	ShowValues bool
	// Label describes the value in the legend.
	Label string
	// NoLegend omits the legend line.
	NoLegend bool
}

// ErrGridShape is returned (wrapped) by GridHeatmap when Values does not
// have one row per layer and one column per token.
var ErrGridShape = errors.New("grid values do not match tokens × layers")

// GridHeatmap writes a token × hidden-state grid: one row per layer, one
// column per token, each cell a block coloured on the same scale as
// Heatmap (or, in ModeNone, the number itself), then a legend.
func GridHeatmap(w io.Writer, g Grid, opts GridOptions) error {
	layers := g.Layers
	if layers == nil {
		layers = make([]int, len(g.Values))
		for i := range layers {
			layers[i] = i
		}
	}
	if len(layers) != len(g.Values) {
		return fmt.Errorf("report: %d layers but %d rows of values: %w", len(layers), len(g.Values), ErrGridShape)
	}
	var all []float64
	hasNaN := false
	for i, row := range g.Values {
		if len(row) != len(g.Tokens) {
			return fmt.Errorf("report: row %d has %d values for %d tokens: %w", i, len(row), len(g.Tokens), ErrGridShape)
		}
		for _, v := range row {
			hasNaN = hasNaN || math.IsNaN(v)
		}
		all = append(all, row...)
	}
	rng, ok := newRange(all, opts.FixedRange, opts.Min, opts.Max)
	p := painter{mode: opts.Mode, scale: opts.Scale, fg: opts.Foreground}
	cw := opts.ColumnWidth
	if cw <= 0 {
		cw = 6
	}
	digits := opts.Digits
	if digits <= 0 {
		digits = 2
	}

	const corner = "layer"
	labelW := len(corner)
	for _, l := range layers {
		labelW = max(labelW, len(strconv.Itoa(l)))
	}
	perBand := len(g.Tokens)
	if width := clampWidth(opts.Width); width > 0 {
		perBand = max(1, (width-labelW)/(cw+1))
	}
	heads := make([]string, len(g.Tokens))
	for i, t := range g.Tokens {
		s := Sanitize(t)
		if t == "" {
			s = EmptyMark
		}
		heads[i] = padRight(truncate(s, cw), cw)
	}

	var b strings.Builder
	for start := 0; start < len(g.Tokens) || start == 0; start += perBand {
		end := min(start+perBand, len(g.Tokens))
		if start > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(padRight(corner, labelW))
		for _, h := range heads[start:end] {
			b.WriteByte(' ')
			b.WriteString(h)
		}
		b.WriteByte('\n')
		for li, l := range layers {
			b.WriteString(padLeft(strconv.Itoa(l), labelW))
			for _, v := range g.Values[li][start:end] {
				b.WriteByte(' ')
				b.WriteString(gridCell(p, rng, v, cw, digits, opts.ShowValues))
			}
			b.WriteByte('\n')
		}
		if len(g.Tokens) == 0 {
			break
		}
	}
	if !opts.NoLegend {
		ww := &wrapWriter{width: clampWidth(opts.Width), close: p.close()}
		ww.legend(heatmapLegend(p, rng, ok, hasNaN, opts.Label, digits, "values"))
		b.WriteString(ww.b.String())
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: writing grid: %w", err)
	}
	return nil
}

// gridCell renders one cell of cw cells.
func gridCell(p painter, rng valueRange, v float64, cw, digits int, showValues bool) string {
	num := formatValue(v, digits)
	pos, ok := rng.pos(v)
	if p.mode == ModeNone || !ok {
		if p.mode != ModeNone {
			num = "-"
		}
		return padLeft(truncate(num, cw), cw)
	}
	var text string
	switch {
	case showValues:
		text = padLeft(truncate(num, cw), cw)
	case p.fg:
		text = strings.Repeat("█", cw)
	default:
		text = strings.Repeat(" ", cw)
	}
	return p.open(pos) + text + p.close()
}
