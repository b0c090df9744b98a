package report

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// PromptRow is one prompt's summary line.
type PromptRow struct {
	// Prompt is the raw prompt text (sanitized and truncated when shown).
	Prompt string
	// Tokens is the number of tokens scored.
	Tokens int
	// Ratio and RatioStd are the distortion ratio's mean and standard
	// deviation over noise draws.
	Ratio, RatioStd float64
	// OOD is the OOD score derived from the ratio (higher = more unusual).
	OOD float64
	// Samples is the number of nudges used (adaptive K); when any row has
	// it, the table has a "K" column.
	Samples int
	// Surprisal is the model's own mean surprisal of the prompt (nats per
	// predicted token), when asked for; when any row has it, the table has
	// a "surprisal" column ("-" in rows without).
	Surprisal *float64
	// Err, when not empty, is why the prompt could not be scored; the row
	// then shows the error instead of numbers.
	Err string
}

// LayerSeries is one prompt's ratio at each hidden state.
type LayerSeries struct {
	// Prompt is the raw prompt text.
	Prompt string
	// Layers are the hidden-state indices, parallel to Mean and Std.
	Layers []int
	// Mean and Std are the ratio's mean and standard deviation per layer.
	// Std may be nil.
	Mean, Std []float64
}

// TableStyle selects the table's borders.
type TableStyle int

const (
	// TableUnicode draws borders with Unicode box-drawing characters.
	TableUnicode TableStyle = iota
	// TableASCII draws borders with + - and |.
	TableASCII
	// TableMarkdown writes a GitHub-flavoured Markdown table.
	TableMarkdown
)

// TableOptions controls Table and LayerTable. The zero value is usable.
type TableOptions struct {
	// Style selects the borders (default TableUnicode).
	Style TableStyle
	// PromptWidth is the widest a prompt is shown, in cells, before it is
	// cut with "…" (default 40).
	PromptWidth int
	// ErrorWidth is the widest an error message is shown (default 60).
	ErrorWidth int
	// Digits is the number of decimals printed (default 3).
	Digits int
}

func (o TableOptions) withDefaults() TableOptions {
	if o.PromptWidth <= 0 {
		o.PromptWidth = 40
	}
	if o.ErrorWidth <= 0 {
		o.ErrorWidth = 60
	}
	if o.Digits <= 0 {
		o.Digits = 3
	}
	return o
}

// newTable returns a tablewriter table with this package's conventions:
// headers as given (no upper-casing), no wrapping or trimming of cells, and
// the given alignment per column.
func newTable(w io.Writer, o TableOptions, aligns []tw.Align) *tablewriter.Table {
	opts := []tablewriter.Option{
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
		tablewriter.WithTrimSpace(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{Global: tw.AlignLeft, PerColumn: aligns}),
	}
	switch o.Style {
	case TableASCII:
		opts = append(opts, tablewriter.WithSymbols(tw.NewSymbols(tw.StyleASCII)))
	case TableMarkdown:
		opts = append(opts, tablewriter.WithRenderer(renderer.NewMarkdown()))
	}
	return tablewriter.NewTable(w, opts...)
}

// Table writes one row per prompt: its index, the prompt (sanitized and
// truncated), the number of tokens, the ratio as "mean ± std" and the OOD
// score. When any row has an error an "error" column is added; the numbers
// of an error row are shown as "-".
func Table(w io.Writer, rows []PromptRow, opts TableOptions) error {
	o := opts.withDefaults()
	hasErr := slices.ContainsFunc(rows, func(r PromptRow) bool { return r.Err != "" })
	header := []any{"#", "prompt", "tokens", "ratio (mean ± std)", "OOD score"}
	aligns := []tw.Align{tw.AlignRight, tw.AlignLeft, tw.AlignRight, tw.AlignRight, tw.AlignRight}
	hasK := slices.ContainsFunc(rows, func(r PromptRow) bool { return r.Samples > 0 })
	if hasK {
		header = append(header, "K")
		aligns = append(aligns, tw.AlignRight)
	}
	hasSurprisal := slices.ContainsFunc(rows, func(r PromptRow) bool { return r.Surprisal != nil })
	if hasSurprisal {
		header = append(header, "surprisal")
		aligns = append(aligns, tw.AlignRight)
	}
	if hasErr {
		header = append(header, "error")
		aligns = append(aligns, tw.AlignLeft)
	}
	t := newTable(w, o, aligns)
	t.Header(header...)
	for i, r := range rows {
		cells := []string{strconv.Itoa(i + 1), cellText(r.Prompt, o.PromptWidth)}
		tokens := "-"
		if r.Tokens > 0 || r.Err == "" {
			tokens = strconv.Itoa(r.Tokens)
		}
		cells = append(cells, tokens)
		if r.Err != "" {
			cells = append(cells, "-", "-")
			if hasK {
				cells = append(cells, "-")
			}
			if hasSurprisal {
				cells = append(cells, "-")
			}
			cells = append(cells, cellText(r.Err, o.ErrorWidth))
		} else {
			cells = append(cells,
				formatValue(r.Ratio, o.Digits)+" ± "+formatValue(r.RatioStd, o.Digits),
				formatValue(r.OOD, o.Digits))
			if hasK {
				cells = append(cells, strconv.Itoa(r.Samples))
			}
			if hasSurprisal {
				cells = append(cells, SurprisalCell(r.Surprisal, o.Digits))
			}
			if hasErr {
				cells = append(cells, "")
			}
		}
		if err := t.Append(cells); err != nil {
			return fmt.Errorf("report: table row %d: %w", i+1, err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("report: rendering table: %w", err)
	}
	return nil
}

// ErrSeriesShape is returned (wrapped) when a LayerSeries' Mean or Std does
// not have one value per layer.
var ErrSeriesShape = errors.New("series values do not match layers")

// LayerTable writes prompts × hidden states: one row per prompt with its
// index, the prompt, a sparkline of the ratio across its layers, and the
// mean ratio at each hidden state (columns "h0", "h1", …, the union of all
// series' layers; a prompt without a layer shows an empty cell).
func LayerTable(w io.Writer, series []LayerSeries, opts TableOptions) error {
	o := opts.withDefaults()
	var layers []int
	for i, s := range series {
		if err := s.check(); err != nil {
			return fmt.Errorf("report: layer table series %d: %w", i+1, err)
		}
		layers = append(layers, s.Layers...)
	}
	slices.Sort(layers)
	layers = slices.Compact(layers)

	header := []any{"#", "prompt", "trend"}
	aligns := []tw.Align{tw.AlignRight, tw.AlignLeft, tw.AlignLeft}
	for _, l := range layers {
		header = append(header, "h"+strconv.Itoa(l))
		aligns = append(aligns, tw.AlignRight)
	}
	t := newTable(w, o, aligns)
	t.Header(header...)
	for i, s := range series {
		at := make(map[int]float64, len(s.Layers))
		for j, l := range s.Layers {
			at[l] = s.Mean[j]
		}
		cells := []string{strconv.Itoa(i + 1), cellText(s.Prompt, o.PromptWidth), Sparkline(s.Mean)}
		for _, l := range layers {
			v, ok := at[l]
			if !ok {
				cells = append(cells, "")
				continue
			}
			cells = append(cells, formatValue(v, o.Digits))
		}
		if err := t.Append(cells); err != nil {
			return fmt.Errorf("report: layer table row %d: %w", i+1, err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("report: rendering layer table: %w", err)
	}
	return nil
}

// check reports whether the series' slices are parallel.
func (s LayerSeries) check() error {
	if len(s.Mean) != len(s.Layers) {
		return fmt.Errorf("%d means for %d layers: %w", len(s.Mean), len(s.Layers), ErrSeriesShape)
	}
	if s.Std != nil && len(s.Std) != len(s.Layers) {
		return fmt.Errorf("%d stds for %d layers: %w", len(s.Std), len(s.Layers), ErrSeriesShape)
	}
	return nil
}

// cellText sanitizes text for a single-line table cell and truncates it.
// Runs of spaces are kept; an empty text shows as EmptyMark.
func cellText(text string, width int) string {
	if text == "" {
		return EmptyMark
	}
	return truncate(Sanitize(text), width)
}

var sparkLevels = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws values as a row of block characters ▁▂▃▄▅▆▇█, scaled
// from the smallest to the largest finite value. Non-finite values (NaN,
// ±Inf) are drawn as a space; when all finite values are equal every one is
// drawn as "▄"; an empty slice gives "".
func Sparkline(values []float64) string {
	rng, ok := newRange(values, false, 0, 0)
	var b strings.Builder
	for _, v := range values {
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			b.WriteRune(' ')
			continue
		}
		if !(rng.hi > rng.lo) {
			b.WriteRune('▄')
			continue
		}
		t := (v - rng.lo) / (rng.hi - rng.lo)
		i := min(int(t*float64(len(sparkLevels))), len(sparkLevels)-1)
		b.WriteRune(sparkLevels[i])
	}
	return b.String()
}

// TextTable writes a generic table of already formatted strings in the same
// style as Table: every header and cell is sanitized and cut to
// opts.PromptWidth cells, and short rows are padded with empty cells. A
// column whose non-empty cells all look like numbers ("1.234", "-0.5",
// "+0.3", "1.2 ± 0.1") is right-aligned.
func TextTable(w io.Writer, header []string, rows [][]string, opts TableOptions) error {
	o := opts.withDefaults()
	ncol := len(header)
	for _, r := range rows {
		ncol = max(ncol, len(r))
	}
	clean := make([][]string, len(rows))
	numeric := make([]bool, ncol)
	seen := make([]bool, ncol)
	for c := range numeric {
		numeric[c] = true
	}
	for i, r := range rows {
		clean[i] = make([]string, ncol)
		for c := range ncol {
			if c >= len(r) || r[c] == "" {
				continue
			}
			clean[i][c] = truncate(Sanitize(r[c]), o.PromptWidth)
			seen[c] = true
			numeric[c] = numeric[c] && looksNumeric(r[c])
		}
	}
	aligns := make([]tw.Align, ncol)
	for c := range aligns {
		aligns[c] = tw.AlignLeft
		if numeric[c] && seen[c] {
			aligns[c] = tw.AlignRight
		}
	}
	t := newTable(w, o, aligns)
	if len(header) > 0 {
		hs := make([]any, ncol)
		for c := range hs {
			hs[c] = ""
			if c < len(header) {
				hs[c] = truncate(Sanitize(header[c]), o.PromptWidth)
			}
		}
		t.Header(hs...)
	}
	for i, r := range clean {
		if err := t.Append(r); err != nil {
			return fmt.Errorf("report: text table row %d: %w", i+1, err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("report: rendering text table: %w", err)
	}
	return nil
}

// looksNumeric reports whether s is a number, optionally "number ± number".
func looksNumeric(s string) bool {
	for part := range strings.SplitSeq(s, "±") {
		if _, err := strconv.ParseFloat(strings.TrimSpace(part), 64); err != nil {
			return false
		}
	}
	return true
}

// SurprisalCell shows a mean surprisal in nats, "-" when absent (a prompt
// of one token predicts nothing).
func SurprisalCell(v *float64, digits int) string {
	if v == nil {
		return "-"
	}
	return formatValue(*v, digits)
}
