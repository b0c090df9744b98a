package report

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestWriteJSONL(t *testing.T) {
	type rec struct {
		Prompt string  `json:"prompt"`
		Ratio  float64 `json:"ratio"`
	}
	tests := []struct {
		name    string
		v       any
		want    string
		wantErr bool
	}{
		{"struct", rec{Prompt: "a < b & c > d", Ratio: 1.5}, `{"prompt":"a < b & c > d","ratio":1.5}` + "\n", false},
		{"escape and newline", rec{Prompt: "x\x1b[2J\ny"}, `{"prompt":"x\u001b[2J\ny","ratio":0}` + "\n", false},
		{"map", map[string]int{"b": 2, "a": 1}, `{"a":1,"b":2}` + "\n", false},
		{"NaN", rec{Ratio: math.NaN()}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteJSONL(&buf, tt.v)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteJSONLLines(t *testing.T) {
	var buf bytes.Buffer
	for i := range 3 {
		if err := WriteJSONL(&buf, map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := buf.String(), "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestWriteJSONLEscapesInvisible: bidi overrides, C1 controls, zero-width
// and tag characters are written as \u escapes (encoding/json leaves them
// raw), and the line still decodes to the original string.
func TestWriteJSONLEscapesInvisible(t *testing.T) {
	in := "set\u202eevil \u0085 zero\u200bwidth tag\U000E0041 café \x1b]0;x\x07"
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, map[string]string{"set": in}); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	for _, raw := range []string{"\u202e", "\u0085", "\u200b", "\U000E0041", "\x1b", "\x07"} {
		if strings.Contains(line, raw) {
			t.Errorf("line holds raw %q: %q", raw, line)
		}
	}
	for _, esc := range []string{`\u202e`, `\u0085`, `\u200b`, `\udb40\udc41`, "café"} {
		if !strings.Contains(line, esc) {
			t.Errorf("line lacks %s: %s", esc, line)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back["set"] != in {
		t.Errorf("decodes to %q, %v", back["set"], err)
	}
}
