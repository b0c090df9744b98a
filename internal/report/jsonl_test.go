package report

import (
	"bytes"
	"math"
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
