package eval

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrAlign reports token texts that do not spell out the prompt.
var ErrAlign = errors.New("token texts do not reproduce the text")

// TokenOffsets aligns tokens (each token's decoded text, in order) with
// text and returns each token's byte span [start, end) in text.
//
// The concatenation of the tokens must reproduce text, with these
// allowances, so that byte-level BPE and SentencePiece vocabularies both
// work:
//   - "▁" (U+2581, SentencePiece's space) reads as a space;
//   - a byte-fallback piece "<0xAB>" reads as the byte 0xAB;
//   - a leading space that text does not have at that point is a
//     SentencePiece dummy prefix and is skipped (the token then covers
//     only the rest of its text);
//   - a piece of the form <...> that text does not contain at that point
//     (a BOS or other control token) covers nothing: start == end.
//
// Otherwise it returns an error wrapping [ErrAlign] that names the first
// token that does not fit.
func TokenOffsets(text string, tokens []string) ([][2]int, error) {
	out := make([][2]int, len(tokens))
	pos := 0
	for i, tok := range tokens {
		piece := pieceText(tok)
		rest := text[pos:]
		switch {
		case strings.HasPrefix(rest, piece):
		case strings.HasPrefix(piece, " ") && strings.HasPrefix(rest, piece[1:]):
			piece = piece[1:]
		case isControlPiece(tok):
			piece = ""
		default:
			return nil, fmt.Errorf("eval: %w: token %d %q does not match %q at byte %d", ErrAlign, i, tok, clip(rest, 20), pos)
		}
		out[i] = [2]int{pos, pos + len(piece)}
		pos += len(piece)
	}
	if pos != len(text) {
		return nil, fmt.Errorf("eval: %w: the tokens end at byte %d of %d (%q left over)", ErrAlign, pos, len(text), clip(text[pos:], 20))
	}
	return out, nil
}

// pieceText turns a token's decoded text into the bytes it stands for.
func pieceText(tok string) string {
	if b, ok := byteFallback(tok); ok {
		return string([]byte{b})
	}
	return strings.ReplaceAll(tok, "▁", " ")
}

// byteFallback parses a SentencePiece byte piece "<0xAB>".
func byteFallback(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(tok[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

func isControlPiece(tok string) bool {
	return len(tok) >= 3 && tok[0] == '<' && tok[len(tok)-1] == '>' && !strings.ContainsAny(tok[1:len(tok)-1], "<> ")
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// TokensInSpan returns the indices of the tokens whose byte span overlaps
// [start, end) of text (see [TokenOffsets] for how tokens are aligned).
// Zero-width tokens never overlap. An empty or out-of-range span is an
// error.
func TokensInSpan(text string, tokens []string, start, end int) ([]int, error) {
	if start < 0 || end > len(text) || start >= end {
		return nil, fmt.Errorf("eval: span [%d, %d) is empty or outside the %d-byte text", start, end, len(text))
	}
	offs, err := TokenOffsets(text, tokens)
	if err != nil {
		return nil, err
	}
	var idx []int
	for i, o := range offs {
		if o[0] < end && o[1] > start && o[0] < o[1] {
			idx = append(idx, i)
		}
	}
	return idx, nil
}

// TokenCase is one prompt's per-token scores with its edited tokens
// marked, for token-level evaluation.
type TokenCase struct {
	Scores []float64 // one per token; higher = more unusual
	Edited []int     // indices of the edited tokens
}

// TokenMetrics summarise how well a per-token score points at the edited
// tokens.
type TokenMetrics struct {
	// AUROC of edited tokens against the other tokens of the same prompts.
	AUROC float64
	// Top1 and Top3 are the fractions of prompts whose highest-scored
	// token (any of the three highest-scored tokens) is an edited token.
	Top1, Top3 float64
	// Prompts counted (those with at least one edited token after position
	// 0 and at least one other token), and tokens on each side.
	Prompts, Edited, Others int
}

// EvaluateTokens scores token-level localisation over cases. Position 0 is
// left out everywhere (it is not predicted and its hidden state is
// abnormal). Ties at the top are broken pessimistically: a prompt counts
// for top-k only if its edited tokens would be in the top k whatever
// order the tied tokens came in, i.e. an edited token's score must beat
// all but fewer than k of the others. A NaN score is an error.
func EvaluateTokens(cases []TokenCase) (TokenMetrics, error) {
	var m TokenMetrics
	var pos, neg []float64
	var hit1, hit3 int
	for c, tc := range cases {
		edited := map[int]bool{}
		for _, i := range tc.Edited {
			if i < 0 || i >= len(tc.Scores) {
				return m, fmt.Errorf("eval: case %d: edited token %d outside its %d tokens", c, i, len(tc.Scores))
			}
			if i > 0 {
				edited[i] = true
			}
		}
		if len(edited) == 0 || len(edited) >= len(tc.Scores)-1 {
			continue // nothing to find, or nothing to tell it from
		}
		best := math.Inf(-1)
		for i := 1; i < len(tc.Scores); i++ {
			s := tc.Scores[i]
			if math.IsNaN(s) {
				return m, fmt.Errorf("eval: case %d: token %d has a NaN score", c, i)
			}
			if edited[i] {
				pos = append(pos, s)
				best = max(best, s)
			} else {
				neg = append(neg, s)
			}
		}
		// Other tokens scoring at least as high as the best edited token.
		above := 0
		for i := 1; i < len(tc.Scores); i++ {
			if !edited[i] && tc.Scores[i] >= best {
				above++
			}
		}
		if above < 1 {
			hit1++
		}
		if above < 3 {
			hit3++
		}
		m.Prompts++
	}
	if m.Prompts == 0 {
		return m, fmt.Errorf("eval: no prompt has both an edited token after position 0 and another token")
	}
	m.AUROC = AUROC(pos, neg)
	m.Top1 = float64(hit1) / float64(m.Prompts)
	m.Top3 = float64(hit3) / float64(m.Prompts)
	m.Edited, m.Others = len(pos), len(neg)
	return m, nil
}
