package report

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "Hello", "Hello"},
		{"leading space kept", " cat", " cat"},
		{"empty", "", ""},
		{"clear screen", "\x1b[2J", "␛[2J"},
		{"prompt with clear screen", "hi\x1b[2Jthere", "hi␛[2Jthere"},
		{"OSC title", "\x1b]0;pwned\x07", "␛]0;pwned␇"},
		{"C1 CSI", "a\u009b31mb", "a⟨U+009B⟩31mb"},
		{"NUL and DEL", "a\x00b\x7f", "a␀b␡"},
		{"carriage return", "a\r\n", "a␍↵"},
		{"newline", "a\nb", "a↵b"},
		{"tab", "a\tb", "a→b"},
		{"only newline", "\n", "↵"},
		{"only spaces", "   ", "···"},
		{"space and newline", " \n", "·↵"},
		{"only tab", "\t", "→"},
		{"nbsp alone", "\u00a0", "⟨U+00A0⟩"},
		{"nbsp in word kept", "a\u00a0b", "a\u00a0b"},
		{"RLO", "abc\u202edef", "abc⟨U+202E⟩def"},
		{"bidi isolates", "\u2066x\u2069", "⟨U+2066⟩x⟨U+2069⟩"},
		{"LRM RLM ALM", "\u200e\u200f\u061c", "⟨U+200E⟩⟨U+200F⟩⟨U+061C⟩"},
		{"zero width", "a\u200bb\u200cc\u200dd\u2060e\ufefff", "a⟨U+200B⟩b⟨U+200C⟩c⟨U+200D⟩d⟨U+2060⟩e⟨U+FEFF⟩f"},
		{"soft hyphen", "co\u00adop", "co⟨U+00AD⟩op"},
		{"tag character", "a\U000E0041", "a⟨U+E0041⟩"},
		{"hangul filler", "\u3164", "⟨U+3164⟩"},
		{"line separator", "a\u2028b", "a⟨U+2028⟩b"},
		{"split multibyte head", "\xe7\x8c", `\xe7\x8c`},
		{"split multibyte tail", "\xab", `\xab`},
		{"invalid in middle", "a\xffb", `a\xffb`},
		{"CJK kept", "日本語", "日本語"},
		{"emoji kept", "👍🏽🇯🇵", "👍🏽🇯🇵"},
		{"leading combining mark", "\u0301e", "◌\u0301e"},
		{"combining after letter kept", "e\u0301", "e\u0301"},
		{"combining after escape", "\x1b\u0301", "␛◌\u0301"},
		{"replacement char kept", "\ufffd", "\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Sanitize(tt.in)
			if got != tt.want {
				t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("Sanitize(%q) = %q is not valid UTF-8", tt.in, got)
			}
		})
	}
}

// TestSanitizeNeverLeaksControls feeds every byte value and a set of
// dangerous runes through Sanitize and checks nothing dangerous survives.
func TestSanitizeNeverLeaksControls(t *testing.T) {
	var b strings.Builder
	for i := range 256 {
		b.WriteByte(byte(i))
	}
	for r := rune(0x80); r <= 0x9f; r++ {
		b.WriteRune(r)
	}
	b.WriteString("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\u200c\u200d\ufeff\u2060")
	got := Sanitize(b.String())
	if !utf8.ValidString(got) {
		t.Fatalf("output is not valid UTF-8")
	}
	for _, r := range got {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || mustEscape(r) {
			t.Errorf("output holds %U", r)
		}
	}
}

func TestSanitizeWidths(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"abc", 3},
		{"日本", 4},
		{"👍🏽", 2},
		{"🇯🇵", 2},
		{"\x1b", 1},
		{"\n", 1},
		{"\t", 1},
		{" ", 1},
		{"\xff", 4},
		{"\u202e", 8},
		{"e\u0301", 1},
	}
	for _, tt := range tests {
		if got := displayWidth(Sanitize(tt.in)); got != tt.want {
			t.Errorf("width of Sanitize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  string
	}{
		{"hello", 10, "hello"},
		{"hello world", 6, "hello…"},
		{"日本語テキスト", 7, "日本語…"},
		{"abc", 0, ""},
		{"abc", 1, "…"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.width); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
		}
	}
}
