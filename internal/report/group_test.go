package report

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestGroupTokens(t *testing.T) {
	ka := "К"    // D0 9A
	emoji := "😀" // F0 9F 98 80
	tests := []struct {
		name  string
		texts []string
		want  []string // group texts
	}{
		{"ascii stays", []string{"Hel", "lo", " world"}, []string{"Hel", "lo", " world"}},
		{"cyrillic split in two", []string{"Hi ", ka[:1], ka[1:], "ot"}, []string{"Hi ", ka, "ot"}},
		{"continuation with more text", []string{ka[:1], ka[1:] + "ак"}, []string{ka + "ак"}},
		{"emoji in four bytes", []string{emoji[:1], emoji[1:2], emoji[2:3], emoji[3:]}, []string{emoji}},
		{"emoji in two pieces", []string{"a" + emoji[:2], emoji[2:], "!"}, []string{"a" + emoji, "!"}},
		{"lone lead byte stays", []string{ka[:1], "x"}, []string{ka[:1], "x"}},
		{"lone continuation stays", []string{"x", ka[1:]}, []string{"x", ka[1:]}},
		{"two characters in a row", []string{ka[:1], ka[1:], ka[:1], ka[1:]}, []string{ka, ka}},
		{"invalid byte never completes", []string{"\xff", "\x80"}, []string{"\xff", "\x80"}},
		{"empty", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gs := GroupTokens(tc.texts)
			var got []string
			next := 0
			for _, g := range gs {
				if g.Start != next || g.End <= g.Start || strings.Join(tc.texts[g.Start:g.End], "") != g.Text {
					t.Fatalf("bad group %+v", g)
				}
				next = g.End
				got = append(got, g.Text)
			}
			if next != len(tc.texts) || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("groups %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGroupScoresMean(t *testing.T) {
	ka := "К"
	in := []TokenScore{{Text: "a", Value: 1}, {Text: ka[:1], ID: 7, Value: 2, Std: 1}, {Text: ka[1:], ID: 8, Value: 4, Std: 3}, {Text: "b", Value: math.NaN()}}
	out := GroupScores(in)
	if len(out) != 3 || out[1].Text != ka || out[1].Value != 3 || out[1].Std != 2 || out[1].ID != 7 || !math.IsNaN(out[2].Value) {
		t.Errorf("GroupScores = %+v", out)
	}
	if got := GroupScores([]TokenScore{{Text: ka[:1], Value: math.NaN()}, {Text: ka[1:], Value: 5}}); got[0].Value != 5 {
		t.Errorf("NaN member not skipped: %+v", got)
	}
}

// TestGroupColumns: a grid's columns of a split character merge into one
// per row (mean of the defined values); a grid of whole characters is
// returned as it is.
func TestGroupColumns(t *testing.T) {
	ka := "К"
	for _, tc := range []struct {
		name   string
		in     Grid
		merged bool
		tokens []string
		values [][]float64
	}{
		{"whole characters", Grid{Tokens: []string{"a", ka}, Values: [][]float64{{1, 2}}}, false, []string{"a", ka}, [][]float64{{1, 2}}},
		{"split letter", Grid{Tokens: []string{"a", ka[:1], ka[1:], "b"}, Layers: []int{3, 4}, Values: [][]float64{{1, 2, 4, 5}, {0, math.NaN(), 6, 7}}},
			true, []string{"a", ka, "b"}, [][]float64{{1, 3, 5}, {0, 6, 7}}},
		{"no defined value", Grid{Tokens: []string{ka[:1], ka[1:]}, Values: [][]float64{{math.NaN(), math.NaN()}}}, true, []string{ka}, [][]float64{{math.NaN()}}},
	} {
		got, merged := GroupColumns(tc.in)
		same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
		ok := merged == tc.merged && len(got.Tokens) == len(tc.tokens) && len(got.Values) == len(tc.values) && len(got.Layers) == len(tc.in.Layers)
		for i := 0; ok && i < len(tc.tokens); i++ {
			ok = got.Tokens[i] == tc.tokens[i]
		}
		for r := 0; ok && r < len(tc.values); r++ {
			ok = len(got.Values[r]) == len(tc.values[r])
			for c := 0; ok && c < len(tc.values[r]); c++ {
				ok = same(got.Values[r][c], tc.values[r][c])
			}
		}
		if !ok {
			t.Errorf("%s: GroupColumns = %+v, %v; want tokens %q, values %v, merged %v", tc.name, got, merged, tc.tokens, tc.values, tc.merged)
		}
	}
}
