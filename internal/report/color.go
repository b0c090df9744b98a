package report

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	colorful "github.com/lucasb-eyer/go-colorful"
	"github.com/muesli/termenv"
	"golang.org/x/term"
)

// Mode is how colour is written to the terminal.
type Mode int

// Colour modes, from none to the richest.
const (
	// ModeNone writes plain text: no escape sequences at all; scores are
	// printed as numbers instead.
	ModeNone Mode = iota
	// ModeANSI16 uses the 16 basic ANSI colours (SGR 30–47), one colour per
	// fifth of the scale.
	ModeANSI16
	// ModeANSI256 uses the xterm 256-colour palette (SGR 38;5 / 48;5).
	ModeANSI256
	// ModeTrueColor uses 24-bit colour (SGR 38;2 / 48;2).
	ModeTrueColor
)

// String returns the name ParseMode accepts for m.
func (m Mode) String() string {
	switch m {
	case ModeNone:
		return "none"
	case ModeANSI16:
		return "ansi16"
	case ModeANSI256:
		return "ansi256"
	case ModeTrueColor:
		return "truecolor"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses a colour mode name as given on a command line:
// none (or off, no, never), ansi16 (or 16, ansi), ansi256 (or 256) and
// truecolor (or 24bit). "auto" is not a mode: callers resolve it with
// DetectColorMode.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "off", "no", "never":
		return ModeNone, nil
	case "ansi16", "16", "ansi":
		return ModeANSI16, nil
	case "ansi256", "256":
		return ModeANSI256, nil
	case "truecolor", "24bit", "true-color":
		return ModeTrueColor, nil
	}
	return ModeNone, fmt.Errorf("report: unknown colour mode %q (want none, ansi16, ansi256 or truecolor)", s)
}

// DetectColorMode returns the richest colour mode f can show, judged by
// termenv from the environment: ModeNone when f is nil or not a terminal,
// when NO_COLOR is set, or when CLICOLOR=0; otherwise COLORTERM
// (truecolor/24bit) and TERM (e.g. xterm-256color) decide. CLICOLOR_FORCE
// forces at least ANSI16 colours even when f is not a terminal.
func DetectColorMode(f *os.File) Mode {
	if f == nil {
		return ModeNone
	}
	return detectColorMode(f, nil, false)
}

// detectColorMode is DetectColorMode with the environment and the terminal
// check injectable for tests. A nil env means the process environment.
func detectColorMode(w io.Writer, env termenv.Environ, assumeTTY bool) Mode {
	var opts []termenv.OutputOption
	if env != nil {
		opts = append(opts, termenv.WithEnvironment(env))
	}
	if assumeTTY {
		opts = append(opts, termenv.WithTTY(true))
	}
	switch termenv.NewOutput(w, opts...).EnvColorProfile() {
	case termenv.TrueColor:
		return ModeTrueColor
	case termenv.ANSI256:
		return ModeANSI256
	case termenv.ANSI:
		return ModeANSI16
	}
	return ModeNone
}

// DetectWidth returns the width of the terminal f in cells. When f is not
// a terminal it falls back to a positive COLUMNS environment variable, and
// then to fallback (use 0 for "do not wrap").
func DetectWidth(f *os.File, fallback int) int {
	if f != nil {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return fallback
}

// Scale is the colour scale used to map values to colours; low values get
// the first colour, high values the last.
type Scale int

const (
	// ScaleSequential runs from dark purple through blue and green to yellow
	// (the viridis colour stops), interpolated in CIE L*a*b*. Lightness grows
	// steadily with the value, so it also reads in grey scale.
	ScaleSequential Scale = iota
	// ScaleDiverging runs from blue through light grey to red, for values
	// centred on a meaningful middle.
	ScaleDiverging
)

// String names the scale.
func (s Scale) String() string {
	switch s {
	case ScaleSequential:
		return "sequential"
	case ScaleDiverging:
		return "diverging"
	}
	return "Scale(" + strconv.Itoa(int(s)) + ")"
}

var (
	sequentialStops = hexColors("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")
	divergingStops  = hexColors("#3b4cc0", "#dddddd", "#b40426")
	// ANSI16 codes per fifth of the scale (foreground; add 10 for background).
	sequential16 = []int{35, 34, 36, 32, 33}
	diverging16  = []int{34, 36, 37, 33, 31}
)

func hexColors(hex ...string) []colorful.Color {
	cs := make([]colorful.Color, len(hex))
	for i, h := range hex {
		// The inputs are constants checked by TestScaleStops.
		cs[i], _ = colorful.Hex(h)
	}
	return cs
}

// colorAt returns the scale's colour at t in [0, 1].
func (s Scale) colorAt(t float64) colorful.Color {
	stops := sequentialStops
	if s == ScaleDiverging {
		stops = divergingStops
	}
	t = math.Max(0, math.Min(1, t))
	pos := t * float64(len(stops)-1)
	i := int(pos)
	if i >= len(stops)-1 {
		return stops[len(stops)-1]
	}
	return stops[i].BlendLab(stops[i+1], pos-float64(i)).Clamped()
}

// valueRange maps values to positions on a scale.
type valueRange struct{ lo, hi float64 }

// newRange returns the range of the finite values in vs, or [lo, hi] when
// fixed is set. ok is false when there is no finite value to show.
func newRange(vs []float64, fixed bool, lo, hi float64) (r valueRange, ok bool) {
	if fixed {
		if lo > hi {
			lo, hi = hi, lo
		}
		return valueRange{lo, hi}, true
	}
	r = valueRange{math.Inf(1), math.Inf(-1)}
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		r.lo = math.Min(r.lo, v)
		r.hi = math.Max(r.hi, v)
		ok = true
	}
	if !ok {
		return valueRange{0, 0}, false
	}
	return r, true
}

// pos returns v's position in [0, 1]; a range of zero width puts every
// value in the middle. ok is false for NaN.
func (r valueRange) pos(v float64) (t float64, ok bool) {
	if math.IsNaN(v) {
		return 0, false
	}
	if !(r.hi > r.lo) {
		return 0.5, true
	}
	return math.Max(0, math.Min(1, (v-r.lo)/(r.hi-r.lo))), true
}

// painter turns scale positions into SGR escape sequences.
type painter struct {
	mode  Mode
	scale Scale
	fg    bool // colour the text instead of the background
}

const sgrReset = "\x1b[0m"

// open returns the escape sequence that starts a run coloured for position
// t, or "" in ModeNone.
func (p painter) open(t float64) string {
	switch p.mode {
	case ModeTrueColor:
		c := p.scale.colorAt(t)
		r, g, b := c.RGB255()
		if p.fg {
			return fmt.Sprintf("\x1b[38;2;%d;%d;%dm", r, g, b)
		}
		tr, tg, tb := textOn(c).RGB255()
		return fmt.Sprintf("\x1b[48;2;%d;%d;%d;38;2;%d;%d;%dm", r, g, b, tr, tg, tb)
	case ModeANSI256:
		c := p.scale.colorAt(t)
		idx := xterm256(c)
		if p.fg {
			return fmt.Sprintf("\x1b[38;5;%dm", idx)
		}
		text := 16 // black
		if textOn(c) == white {
			text = 231
		}
		return fmt.Sprintf("\x1b[48;5;%d;38;5;%dm", idx, text)
	case ModeANSI16:
		codes := sequential16
		if p.scale == ScaleDiverging {
			codes = diverging16
		}
		code := codes[min(int(t*float64(len(codes))), len(codes)-1)]
		if p.fg {
			return fmt.Sprintf("\x1b[%dm", code)
		}
		text := 30 // black text on light backgrounds
		if code == 34 || code == 35 || code == 31 {
			text = 97 // bright white on dark ones
		}
		return fmt.Sprintf("\x1b[%d;%dm", code+10, text)
	}
	return ""
}

// close returns the sequence ending a run started with a non-empty open.
func (p painter) close() string {
	if p.mode == ModeNone {
		return ""
	}
	return sgrReset
}

var (
	black = colorful.Color{R: 0, G: 0, B: 0}
	white = colorful.Color{R: 1, G: 1, B: 1}
)

// textOn returns black or white, whichever reads better on background c.
func textOn(c colorful.Color) colorful.Color {
	l, _, _ := c.Lab()
	if l > 0.6 {
		return black
	}
	return white
}

// xterm256 returns the index of the xterm palette colour (the 6×6×6 cube
// 16–231 or the grey ramp 232–255) nearest to c in CIE L*a*b*.
func xterm256(c colorful.Color) int {
	levels := [6]float64{0, 0x5f, 0x87, 0xaf, 0xd7, 0xff}
	best, bestD := 16, math.Inf(1)
	try := func(idx int, r, g, b float64) {
		cand := colorful.Color{R: r / 255, G: g / 255, B: b / 255}
		if d := c.DistanceLab(cand); d < bestD {
			best, bestD = idx, d
		}
	}
	for r := range 6 {
		for g := range 6 {
			for b := range 6 {
				try(16+36*r+6*g+b, levels[r], levels[g], levels[b])
			}
		}
	}
	for i := range 24 {
		v := float64(8 + 10*i)
		try(232+i, v, v, v)
	}
	return best
}
