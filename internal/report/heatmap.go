package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// TokenScore is one token of a prompt and the score to show for it.
type TokenScore struct {
	// Text is the token's text as decoded by the tokenizer; it may hold
	// anything, including partial UTF-8 and control characters.
	Text string
	// ID is the token id (not rendered by Heatmap; kept for JSON output).
	ID int
	// Value is the number that is coloured and printed: a ratio or an OOD
	// score. NaN means "no score" and is left uncoloured.
	Value float64
	// Std is the spread of Value over noise draws (shown with ShowStd).
	Std float64
}

// MinWidth is the narrowest wrapping width Heatmap and GridHeatmap honour;
// smaller positive widths are raised to it. Two cells hold any single
// character, so even a token wider than the line prints piece by piece.
const MinWidth = 2

// HeatmapOptions controls Heatmap. The zero value writes plain text without
// wrapping, scaled to the data's own range, with a legend.
type HeatmapOptions struct {
	// Mode selects the colour encoding; see DetectColorMode.
	Mode Mode
	// Width wraps lines at this many terminal cells; 0 disables wrapping.
	// Tokens are never broken unless one alone is wider than a line.
	Width int
	// Label describes the value in the legend, e.g.
	// "OOD score, hidden state 15 of 30".
	Label string
	// Scale is the colour scale (default ScaleSequential).
	Scale Scale
	// Foreground colours the token text instead of its background.
	Foreground bool
	// FixedRange uses [Min, Max] for the colour scale instead of the data's
	// range, so several heatmaps can share one scale. Values outside are
	// clamped to the ends.
	FixedRange bool
	Min, Max   float64
	// Digits is the number of decimals printed for scores (default 2 when
	// zero or negative).
	Digits int
	// ShowStd prints "value±std" instead of "value" in ModeNone.
	ShowStd bool
	// NoLegend omits the legend line.
	NoLegend bool
}

// Heatmap writes the prompt's own text with each token coloured by its
// Value, followed by a legend (the scale's minimum and maximum, opts.Label
// and the colour mode). In ModeNone it writes plain text with the score in
// brackets after each token, e.g. "The[0.12] cat[1.30]".
//
// Token text goes through Sanitize; a line feed in a token is shown as "↵"
// followed by a real line break, and an empty token as "∅". With a Width,
// a token that does not fit on the current line moves to the next one, and
// a token wider than a whole line is split between grapheme clusters, each
// piece coloured on its own. Every coloured run is reset before a line
// ends, so no colour bleeds into the next line or the rest of the terminal.
func Heatmap(w io.Writer, tokens []TokenScore, opts HeatmapOptions) error {
	vals := make([]float64, len(tokens))
	hasNaN := false
	for i, t := range tokens {
		vals[i] = t.Value
		hasNaN = hasNaN || math.IsNaN(t.Value)
	}
	rng, ok := newRange(vals, opts.FixedRange, opts.Min, opts.Max)
	p := painter{mode: opts.Mode, scale: opts.Scale, fg: opts.Foreground}
	digits := opts.Digits
	if digits <= 0 {
		digits = 2
	}

	ww := &wrapWriter{width: clampWidth(opts.Width), close: p.close()}
	for _, t := range tokens {
		lines := sanitizeLines(t.Text)
		if t.Text == "" {
			lines = [][]unit{{{s: EmptyMark, w: displayWidth(EmptyMark)}}}
		}
		open := ""
		if pos, ok := rng.pos(t.Value); ok {
			open = p.open(pos)
		}
		segs := make([]segment, len(lines))
		suffixAt := 0
		for i, l := range lines {
			segs[i] = segment{units: l, open: open, brk: i < len(lines)-1}
			if len(l) > 0 {
				suffixAt = i
			}
		}
		if opts.Mode == ModeNone {
			s := "[" + formatValue(t.Value, digits)
			if opts.ShowStd {
				s += "±" + formatValue(t.Std, digits)
			}
			s += "]"
			segs[suffixAt].units = append(segs[suffixAt].units, unit{s: s, w: displayWidth(s)})
		}
		ww.token(segs)
	}
	ww.endLine()

	if !opts.NoLegend {
		ww.legend(heatmapLegend(p, rng, ok, hasNaN, opts.Label, digits, "scores in [brackets]"))
	}
	if _, err := io.WriteString(w, ww.b.String()); err != nil {
		return fmt.Errorf("report: writing heatmap: %w", err)
	}
	return nil
}

// clampWidth applies MinWidth to a positive width; 0 or less means no
// wrapping.
func clampWidth(width int) int {
	if width <= 0 {
		return 0
	}
	return max(width, MinWidth)
}

// formatValue prints a score with the given number of decimals; NaN and
// infinities print as NaN, +Inf and -Inf.
func formatValue(v float64, digits int) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'f', digits, 64)
}

// legendPart is a piece of a legend: plain text, or a colour bar.
type legendPart struct {
	units []unit
	opens []string // per unit escape sequence, or nil for plain text
}

func plainPart(s string) legendPart {
	return legendPart{units: []unit{{s: s, w: displayWidth(s)}}}
}

// heatmapLegend builds the legend pieces: the scale, the label and the mode.
// plain introduces the range in ModeNone.
func heatmapLegend(p painter, rng valueRange, ok, hasNaN bool, label string, digits int, plain string) []legendPart {
	var parts []legendPart
	switch {
	case !ok:
		parts = append(parts, plainPart("scale: no finite scores"))
	case p.mode == ModeNone:
		parts = append(parts, plainPart(fmt.Sprintf("%s, min %s, max %s", plain,
			formatValue(rng.lo, digits), formatValue(rng.hi, digits))))
	default:
		bar := legendPart{}
		lo := formatValue(rng.lo, digits) + " "
		bar.units = append(bar.units, unit{s: lo, w: displayWidth(lo)})
		bar.opens = append(bar.opens, "")
		const steps = 8
		cell := " "
		if p.fg {
			cell = "█"
		}
		for i := range steps {
			bar.units = append(bar.units, unit{s: cell, w: 1})
			bar.opens = append(bar.opens, p.open(float64(i)/(steps-1)))
		}
		hi := " " + formatValue(rng.hi, digits)
		bar.units = append(bar.units, unit{s: hi, w: displayWidth(hi)})
		bar.opens = append(bar.opens, "")
		parts = append(parts, bar)
	}
	if label != "" {
		parts = append(parts, plainPart(Sanitize(label)))
	}
	mode := "colour: " + p.mode.String()
	if p.mode != ModeNone {
		mode += ", " + p.scale.String() + " scale, low→high"
		if hasNaN {
			mode += ", uncoloured = no score"
		}
	}
	parts = append(parts, plainPart("("+mode+")"))
	return parts
}

// segment is a run of units of one token up to a hard line break.
type segment struct {
	units []unit
	open  string // escape sequence starting the colour, or ""
	brk   bool   // a line break follows
}

// wrapWriter lays tokens out in lines of at most width cells.
type wrapWriter struct {
	b     strings.Builder
	width int    // 0: no wrapping
	col   int    // cells used on the current line
	close string // escape sequence ending a coloured run
}

func (ww *wrapWriter) newline() {
	ww.b.WriteByte('\n')
	ww.col = 0
}

// endLine ends the current line if anything is on it.
func (ww *wrapWriter) endLine() {
	if ww.col > 0 {
		ww.newline()
	}
}

// token writes one token, moving it to a new line when it does not fit.
func (ww *wrapWriter) token(segs []segment) {
	for _, sg := range segs {
		width := 0
		for _, u := range sg.units {
			width += u.w
		}
		if ww.width > 0 && ww.col > 0 && ww.col+width > ww.width {
			ww.newline()
		}
		ww.run(sg.open, sg.units)
		if sg.brk {
			ww.newline()
		}
	}
}

// run writes units in one colour, breaking lines between units where
// needed; each line's piece is opened and closed separately.
func (ww *wrapWriter) run(open string, us []unit) {
	var chunk strings.Builder
	flush := func() {
		if chunk.Len() == 0 {
			return
		}
		ww.b.WriteString(open)
		ww.b.WriteString(chunk.String())
		if open != "" {
			ww.b.WriteString(ww.close)
		}
		chunk.Reset()
	}
	for _, u := range us {
		pieces := []unit{u}
		if ww.width > 0 && u.w > ww.width {
			pieces = graphemeUnits(u.s)
		}
		for _, pc := range pieces {
			if ww.width > 0 && ww.col > 0 && ww.col+pc.w > ww.width {
				flush()
				ww.newline()
			}
			chunk.WriteString(pc.s)
			ww.col += pc.w
		}
	}
	flush()
}

// graphemeUnits splits sanitized text into single grapheme units.
func graphemeUnits(s string) []unit {
	return appendGraphemesRaw(nil, s)
}

// legend writes legend parts on one line when they fit, else one per line.
func (ww *wrapWriter) legend(parts []legendPart) {
	total := 0
	for i, pt := range parts {
		if i > 0 {
			total += 2
		}
		for _, u := range pt.units {
			total += u.w
		}
	}
	oneLine := ww.width == 0 || total <= ww.width
	for i, pt := range parts {
		if i > 0 {
			if oneLine {
				ww.b.WriteString("  ")
			} else {
				ww.b.WriteByte('\n')
			}
		}
		for j, u := range pt.units {
			open := ""
			if pt.opens != nil {
				open = pt.opens[j]
			}
			ww.b.WriteString(open)
			ww.b.WriteString(u.s)
			if open != "" {
				ww.b.WriteString(ww.close)
			}
		}
	}
	ww.b.WriteByte('\n')
	ww.col = 0
}
