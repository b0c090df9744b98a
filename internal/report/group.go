package report

import (
	"math"
	"unicode/utf8"
)

// TokenGroup is a run of consecutive tokens shown as one piece of text:
// tokens [Start, End) whose bytes together form Text.
type TokenGroup struct {
	Start, End int
	Text       string
}

// maxGroup bounds a group: a UTF-8 character has at most 4 bytes, so no
// more than 4 byte-level tokens can be needed to complete one.
const maxGroup = 4

// GroupTokens groups byte-level tokens that split a multi-byte UTF-8
// character (a Cyrillic letter, an emoji) into the characters they form.
// A token whose text ends in an incomplete UTF-8 sequence is joined with
// the tokens after it while each next token starts with a continuation
// byte, until the joined text is valid UTF-8 (or maxGroup tokens). Every
// other token is a group of its own, so valid text is never regrouped and
// the groups cover texts in order.
func GroupTokens(texts []string) []TokenGroup {
	groups := make([]TokenGroup, 0, len(texts))
	for i := 0; i < len(texts); {
		buf := texts[i]
		j := i + 1
		for j < len(texts) && j-i < maxGroup && incompleteTail(buf) && startsWithContinuation(texts[j]) {
			buf += texts[j]
			j++
			if utf8.ValidString(buf) {
				break
			}
		}
		groups = append(groups, TokenGroup{Start: i, End: j, Text: buf})
		i = j
	}
	return groups
}

// incompleteTail reports whether s ends in the first bytes of a
// multi-byte UTF-8 character that more bytes could complete.
func incompleteTail(s string) bool {
	for k := 1; k <= 3 && k <= len(s); k++ {
		b := s[len(s)-k]
		if b < 0x80 {
			return false
		}
		if b >= 0xC0 { // a lead byte: is the sequence short?
			need := 0
			switch {
			case b > 0xF4:
				need = 0 // never a lead byte
			case b >= 0xF0:
				need = 4
			case b >= 0xE0:
				need = 3
			case b >= 0xC2:
				need = 2
			}
			return need > k
		}
	}
	return false
}

// startsWithContinuation reports whether s begins with a UTF-8
// continuation byte (10xxxxxx).
func startsWithContinuation(s string) bool { return s != "" && s[0]&0xC0 == 0x80 }

// GroupScores merges the tokens of each group of GroupTokens into one
// TokenScore: the group's text, the first token's ID, and the MEAN of the
// members' defined values and stds (NaN when none is defined). Tokens that
// form whole characters on their own are returned unchanged.
func GroupScores(tokens []TokenScore) []TokenScore {
	texts := make([]string, len(tokens))
	for i, t := range tokens {
		texts[i] = t.Text
	}
	groups := GroupTokens(texts)
	if len(groups) == len(tokens) {
		return tokens
	}
	out := make([]TokenScore, len(groups))
	for gi, g := range groups {
		if g.End-g.Start == 1 {
			out[gi] = tokens[g.Start]
			continue
		}
		out[gi] = TokenScore{Text: g.Text, ID: tokens[g.Start].ID, Value: MeanDefined(valuesOf(tokens[g.Start:g.End], false)), Std: MeanDefined(valuesOf(tokens[g.Start:g.End], true))}
	}
	return out
}

func valuesOf(ts []TokenScore, std bool) []float64 {
	vs := make([]float64, len(ts))
	for i, t := range ts {
		vs[i] = t.Value
		if std {
			vs[i] = t.Std
		}
	}
	return vs
}

// MeanDefined is the mean of the finite values of vs, NaN if there are
// none: the score of a group of tokens.
func MeanDefined(vs []float64) float64 {
	sum, n := 0.0, 0
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// GroupColumns merges the columns of each group of GroupTokens in a token
// × hidden-state grid, as GroupScores merges a row of tokens: the group's
// text as the label and, in every row, the MEAN of its members' defined
// values. It reports whether any column was merged (g is returned as it is
// when none was).
func GroupColumns(g Grid) (Grid, bool) {
	groups := GroupTokens(g.Tokens)
	if len(groups) == len(g.Tokens) {
		return g, false
	}
	out := Grid{Tokens: make([]string, len(groups)), Layers: g.Layers, Values: make([][]float64, len(g.Values))}
	for gi, gr := range groups {
		out.Tokens[gi] = gr.Text
	}
	for r, row := range g.Values {
		merged := make([]float64, len(groups))
		for gi, gr := range groups {
			merged[gi] = MeanDefined(row[gr.Start:gr.End])
		}
		out.Values[r] = merged
	}
	return out, true
}
