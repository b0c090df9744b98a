package report

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
	"github.com/rivo/uniseg"
)

// Visible stand-ins used by Sanitize.
const (
	// NewlineMark replaces a line feed. In heatmaps it is followed by a real
	// line break; in single-line contexts (tables, grid headers) it is not.
	NewlineMark = "↵"
	// TabMark replaces a horizontal tab.
	TabMark = "→"
	// SpaceMark replaces an ASCII space in a token made only of whitespace.
	SpaceMark = "·"
	// EmptyMark stands for a token with no text in heatmaps.
	EmptyMark = "∅"
	// combiningBase is put in front of a combining mark that would otherwise
	// start a run and attach itself to whatever was printed before it.
	combiningBase = "◌"
)

// cells measures display width with ambiguous-width characters counted as
// narrow, independent of the locale, so that output is reproducible.
var cells = &runewidth.Condition{EastAsianWidth: false, StrictEmojiNeutral: true}

// unit is the smallest piece of sanitized text that is kept together when
// wrapping: a grapheme cluster, or one escape such as `\x9f` or ⟨U+202E⟩.
type unit struct {
	s string
	w int // width in terminal cells
}

// Sanitize returns text made safe and visible for a terminal. It never
// returns raw control characters, so token text can be printed without
// letting it move the cursor, change colours, set the window title, reorder
// text or hide itself. The rules, applied rune by rune:
//
//   - a byte that is not valid UTF-8 (tokens may split a multi-byte
//     character) becomes `\xNN`;
//   - line feed becomes "↵" (heatmaps add a real line break after it);
//   - tab becomes "→";
//   - other C0 controls (U+0000–U+001F, including ESC) become their
//     Control Pictures (␀ … ␟, so ESC is "␛") and DEL becomes "␡";
//   - C1 controls (U+0080–U+009F), bidi controls (U+202A–U+202E,
//     U+2066–U+2069, U+200E, U+200F, U+061C), zero-width characters
//     (U+200B–U+200D, U+2060, U+FEFF), every other format character
//     (category Cf, e.g. soft hyphen, tag characters), other default
//     ignorable code points (e.g. U+3164 Hangul filler) and the line and
//     paragraph separators U+2028/U+2029 become `⟨U+XXXX⟩`;
//   - a combining mark that would start a run of text is shown on a dotted
//     circle "◌" so it cannot attach to the previous token;
//   - in a token made only of whitespace, ASCII spaces become "·" and other
//     space characters become `⟨U+XXXX⟩`, so the token is visible; inside
//     any other token spaces are left as they are.
//
// Everything else, including CJK text and emoji, is kept.
func Sanitize(text string) string {
	var b strings.Builder
	for _, line := range sanitizeLines(text) {
		for _, u := range line {
			b.WriteString(u.s)
		}
	}
	return b.String()
}

// sanitizeLines sanitizes text and splits it into display units. The result
// has one element per source line: every element but the last ends with the
// NewlineMark unit and is followed by a hard line break in heatmaps. It
// always has at least one element.
func sanitizeLines(text string) [][]unit {
	blank := isAllSpace(text)
	lines := [][]unit{nil}
	var plain strings.Builder
	flush := func() {
		if plain.Len() == 0 {
			return
		}
		last := len(lines) - 1
		lines[last] = appendGraphemes(lines[last], plain.String())
		plain.Reset()
	}
	add := func(s string) {
		flush()
		last := len(lines) - 1
		lines[last] = append(lines[last], unit{s: s, w: cells.StringWidth(s)})
	}
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == utf8.RuneError && size <= 1 {
			add(fmt.Sprintf(`\x%02x`, text[i]))
			i++
			continue
		}
		i += size
		switch {
		case r == '\n':
			add(NewlineMark)
			lines = append(lines, nil)
		case r == '\t':
			add(TabMark)
		case r == ' ' && blank:
			add(SpaceMark)
		case r < 0x20:
			add(string(rune(0x2400 + r)))
		case r == 0x7f:
			add("␡")
		case mustEscape(r) || (blank && unicode.IsSpace(r)):
			add(fmt.Sprintf("⟨U+%04X⟩", r))
		default:
			plain.WriteRune(r)
		}
	}
	flush()
	return lines
}

// mustEscape reports whether r is invisible or changes how text around it is
// displayed, and so must be shown as a code point.
func mustEscape(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls
		return true
	case r == 0x2028 || r == 0x2029: // line and paragraph separator
		return true
	case unicode.Is(unicode.Cf, r): // bidi, zero-width, BOM, tags, ...
		return true
	case unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r):
		return true
	}
	return false
}

// isAllSpace reports whether text is non-empty valid UTF-8 made only of
// white space.
func isAllSpace(text string) bool {
	if text == "" || !utf8.ValidString(text) {
		return false
	}
	for _, r := range text {
		if !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// appendGraphemes splits s (which holds no characters that need escaping)
// into grapheme clusters and appends them to us. A combining mark at the
// start of s is put on a dotted circle.
func appendGraphemes(us []unit, s string) []unit {
	if r, _ := utf8.DecodeRuneInString(s); unicode.In(r, unicode.Mn, unicode.Me) {
		s = combiningBase + s
	}
	return appendGraphemesRaw(us, s)
}

// appendGraphemesRaw appends the grapheme clusters of s to us.
func appendGraphemesRaw(us []unit, s string) []unit {
	state := -1
	for s != "" {
		var g string
		g, s, _, state = uniseg.FirstGraphemeClusterInString(s, state)
		us = append(us, unit{s: g, w: cells.StringWidth(g)})
	}
	return us
}

// displayWidth returns the width of already sanitized text in terminal cells.
func displayWidth(s string) int {
	return cells.StringWidth(s)
}

// truncate shortens already sanitized text to at most width cells, ending it
// with "…" when something was cut. It never splits a grapheme cluster.
func truncate(s string, width int) string {
	if width <= 0 {
		return ""
	}
	if cells.StringWidth(s) <= width {
		return s
	}
	return cells.Truncate(s, width, "…")
}

// padRight pads already sanitized text with spaces to width cells.
func padRight(s string, width int) string {
	if n := width - cells.StringWidth(s); n > 0 {
		return s + strings.Repeat(" ", n)
	}
	return s
}

// padLeft right-aligns already sanitized text in width cells.
func padLeft(s string, width int) string {
	if n := width - cells.StringWidth(s); n > 0 {
		return strings.Repeat(" ", n) + s
	}
	return s
}
