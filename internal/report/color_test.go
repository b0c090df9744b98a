package report

import (
	"io"
	"os"
	"testing"

	colorful "github.com/lucasb-eyer/go-colorful"
)

// fakeEnv is a termenv.Environ backed by a map.
type fakeEnv map[string]string

func (e fakeEnv) Environ() []string {
	var out []string
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	return out
}

func (e fakeEnv) Getenv(k string) string { return e[k] }

func TestDetectColorMode(t *testing.T) {
	tests := []struct {
		name string
		env  fakeEnv
		tty  bool
		want Mode
	}{
		{"not a terminal", fakeEnv{"TERM": "xterm-256color", "COLORTERM": "truecolor"}, false, ModeNone},
		{"truecolor", fakeEnv{"TERM": "xterm-256color", "COLORTERM": "truecolor"}, true, ModeTrueColor},
		{"24bit", fakeEnv{"TERM": "xterm", "COLORTERM": "24bit"}, true, ModeTrueColor},
		{"256", fakeEnv{"TERM": "xterm-256color"}, true, ModeANSI256},
		{"16", fakeEnv{"TERM": "xterm"}, true, ModeANSI16},
		{"dumb", fakeEnv{"TERM": "dumb"}, true, ModeNone},
		{"NO_COLOR", fakeEnv{"TERM": "xterm-256color", "COLORTERM": "truecolor", "NO_COLOR": "1"}, true, ModeNone},
		{"CLICOLOR=0", fakeEnv{"TERM": "xterm-256color", "CLICOLOR": "0"}, true, ModeNone},
		{"CLICOLOR_FORCE", fakeEnv{"CLICOLOR_FORCE": "1"}, false, ModeANSI16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := detectColorMode(io.Discard, tt.env, tt.tty); got != tt.want {
				t.Errorf("detectColorMode = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDetectOnFiles(t *testing.T) {
	if got := DetectColorMode(nil); got != ModeNone {
		t.Errorf("DetectColorMode(nil) = %v", got)
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv("CLICOLOR_FORCE", "")
	if got := DetectColorMode(f); got != ModeNone {
		t.Errorf("DetectColorMode(regular file) = %v, want none", got)
	}
	t.Setenv("COLUMNS", "123")
	if got := DetectWidth(f, 80); got != 123 {
		t.Errorf("DetectWidth with COLUMNS=123 = %d", got)
	}
	t.Setenv("COLUMNS", "")
	if got := DetectWidth(f, 80); got != 80 {
		t.Errorf("DetectWidth fallback = %d", got)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range allModes {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	for in, want := range map[string]Mode{"256": ModeANSI256, "16": ModeANSI16, "24bit": ModeTrueColor, " Off ": ModeNone} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	if _, err := ParseMode("auto"); err == nil {
		t.Errorf("ParseMode(auto) succeeded")
	}
}

func TestScaleStops(t *testing.T) {
	for _, stops := range [][]colorful.Color{sequentialStops, divergingStops} {
		for i, c := range stops {
			if c == (colorful.Color{}) {
				t.Errorf("stop %d did not parse", i)
			}
		}
	}
	// The sequential scale must get lighter from low to high.
	prev := -1.0
	for i := range 11 {
		l, _, _ := ScaleSequential.colorAt(float64(i) / 10).Lab()
		if l <= prev {
			t.Errorf("lightness not increasing at %d: %.3f <= %.3f", i, l, prev)
		}
		prev = l
	}
}

func TestXterm256(t *testing.T) {
	tests := []struct {
		c    colorful.Color
		want int
	}{
		{colorful.Color{R: 0, G: 0, B: 0}, 16},
		{colorful.Color{R: 1, G: 1, B: 1}, 231},
		{colorful.Color{R: 1, G: 0, B: 0}, 196},
		{colorful.Color{R: 0.5, G: 0.5, B: 0.5}, 244},
	}
	for _, tt := range tests {
		if got := xterm256(tt.c); got != tt.want {
			t.Errorf("xterm256(%v) = %d, want %d", tt.c.Hex(), got, tt.want)
		}
	}
}
