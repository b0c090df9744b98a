package eval

import (
	"math"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCorruptSpanExamples(t *testing.T) {
	// Hand-checked: the candidate list has one entry, so the seed does not
	// matter, and the result is fully determined.
	tests := []struct {
		kind, text   string
		want, edited string
		original     string
	}{
		{SpanSwap, "Sam fed the cats.", "Sam fed the ", "", "cats"},
		{SpanDuplicate, "Go home", "Go home home", "home", "home"},
		{SpanScript, "Go home", "Go хоме", "хоме", "home"},
		{SpanHomoglyph, "Go home", "Go hоmе", "hоmе", "home"},
	}
	for _, tt := range tests {
		e, ok, err := CorruptSpan(tt.kind, tt.text, 7)
		if err != nil || !ok {
			t.Fatalf("%s(%q): ok=%v err=%v", tt.kind, tt.text, ok, err)
		}
		if tt.kind == SpanSwap {
			// "cats" is plural: the replacement must be a listed noun + "s".
			rep := strings.TrimSuffix(e.Edited(), "s")
			if !strings.HasPrefix(e.Text, tt.want) || !strings.HasSuffix(e.Text, ".") || !strings.HasSuffix(e.Edited(), "s") || !containsStr(concreteNouns, rep) {
				t.Errorf("swap: %q (edited %q)", e.Text, e.Edited())
			}
		} else if e.Text != tt.want || e.Edited() != tt.edited {
			t.Errorf("%s(%q) = %q edited %q, want %q edited %q", tt.kind, tt.text, e.Text, e.Edited(), tt.want, tt.edited)
		}
		if e.Original != tt.original || e.Kind != tt.kind {
			t.Errorf("%s: original %q kind %q", tt.kind, e.Original, e.Kind)
		}
	}
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func TestCorruptSpanDigit(t *testing.T) {
	e, ok, err := CorruptSpan(SpanDigit, "It costs 42 euros.", 3)
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	// The edit is exactly one digit of "42", replaced by another digit.
	if e.End != e.Start+1 || e.Start < 9 || e.Start > 10 || e.Original != "42"[e.Start-9:e.Start-8] {
		t.Fatalf("edit %+v: want one digit of 42", e)
	}
	if c := e.Edited()[0]; c < '0' || c > '9' || e.Edited() == e.Original {
		t.Fatalf("edited %q, original %q: want another digit", e.Edited(), e.Original)
	}
	if len(e.Text) != len("It costs 42 euros.") || e.Text[:e.Start] != "It costs 42 euros."[:e.Start] || e.Text[e.End:] != "It costs 42 euros."[e.End:] {
		t.Errorf("want exactly one digit changed in place: %q", e.Text)
	}
	for _, text := range []string{"No numbers here.", "1990 was a long year."} {
		if _, ok, err := CorruptSpan(SpanDigit, text, 3); ok || err != nil {
			t.Errorf("%q: ok=%v err=%v, want skipped (no number after the first word)", text, ok, err)
		}
	}
}

// TestDigitEditedTokens checks that the tokens a digit edit marks as
// edited are exactly those whose text changed, for a tokenizer that
// splits numbers into digits (SmolLM2, Qwen2: " ", "4", "2") and for one
// that keeps a number whole.
func TestDigitEditedTokens(t *testing.T) {
	const text = "It costs 42 euros in 2023."
	for seed := range uint64(40) {
		e, ok, err := CorruptSpan(SpanDigit, text, seed)
		if err != nil || !ok {
			t.Fatalf("seed %d: ok=%v err=%v", seed, ok, err)
		}
		tests := []struct {
			name   string
			tokens func(string) []string
		}{
			{"digits split", splitDigits},
			{"numbers whole", func(s string) []string { return strings.SplitAfter(s, " ") }},
		}
		for _, tt := range tests {
			before, after := tt.tokens(text), tt.tokens(e.Text)
			if len(before) != len(after) {
				t.Fatalf("seed %d %s: %d tokens before, %d after", seed, tt.name, len(before), len(after))
			}
			var changed []int
			for i := range before {
				if before[i] != after[i] {
					changed = append(changed, i)
				}
			}
			got, err := TokensInSpan(e.Text, after, e.Start, e.End)
			if err != nil {
				t.Fatal(err)
			}
			if len(changed) != 1 || !slices.Equal(got, changed) {
				t.Errorf("seed %d %s: %q → %q: edited tokens %v, changed tokens %v", seed, tt.name, text, e.Text, got, changed)
			}
		}
	}
}

// splitDigits tokenizes like SmolLM2: words with their leading space,
// a space before a number as a token of its own, each digit alone.
func splitDigits(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		j := i + 1
		switch {
		case s[i] >= '0' && s[i] <= '9':
		case s[i] == ' ' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
		default:
			for j < len(s) && s[j] != ' ' && !(s[j] >= '0' && s[j] <= '9') {
				j++
			}
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

func TestCorruptSpanSkipsAndErrors(t *testing.T) {
	tests := []struct{ kind, text string }{
		{SpanSwap, "Nothing to see here."},  // no determiner phrase
		{SpanSwap, "Give it to the."},       // determiner without a noun
		{SpanMash, "Hello"},                 // only the first word
		{SpanDuplicate, "Hi, yo."},          // no word of 3+ letters after the first
		{SpanHomoglyph, "Hello burn blunt"}, // no look-alike letter after the first word
		{SpanScript, "Hello Ünïcödé"},       // not ASCII
	}
	for _, tt := range tests[:2] {
		if _, ok, err := CorruptSpan(tt.kind, tt.text, 1); ok || err != nil {
			t.Errorf("%s(%q): ok=%v err=%v, want skipped", tt.kind, tt.text, ok, err)
		}
	}
	for _, tt := range tests[2:] {
		if _, ok, err := CorruptSpan(tt.kind, tt.text, 1); ok || err != nil {
			t.Errorf("%s(%q): ok=%v err=%v, want skipped", tt.kind, tt.text, ok, err)
		}
	}
	if _, _, err := CorruptSpan("bogus", "x", 1); err == nil || !strings.Contains(err.Error(), SpanSwap) {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestSwapNounHeuristic(t *testing.T) {
	tests := []struct{ text, noun string }{
		{"The city council voted on Tuesday.", "council"},     // "voted" is a past form
		{"The central bank left rates alone.", "bank"},        // "left" is a common verb
		{"Rain hit the coast tonight.", "coast"},              // "tonight" is a function word
		{"We met near the old mill, then left.", "mill"},      // punctuation ends the phrase
		{"They walked into an hour of silence", "hour"},       // "of" ends the phrase
		{"Put it on the Eiffel Tower now", ""},                // capitalised: not a common noun
		{"The school board announced changes.", "board"},      // -ed
		{"She spent the weekend clearing litter.", "weekend"}, // -ing
		// A known limit of the heuristic: nothing marks "leave" as a verb,
		// so the last word of the run is taken.
		{"He saw the old man leave", "leave"},
	}
	for _, tt := range tests {
		ws := words(tt.text)
		got := nouns(tt.text, ws)
		var names []string
		for _, s := range got {
			names = append(names, tt.text[s.start:s.end])
		}
		if tt.noun == "" {
			if len(names) != 0 {
				t.Errorf("%q: nouns %v, want none", tt.text, names)
			}
			continue
		}
		if len(names) != 1 || names[0] != tt.noun {
			t.Errorf("%q: nouns %v, want [%s]", tt.text, names, tt.noun)
		}
	}
	// Article agreement: after "an" only a vowel-initial noun, after "a" a consonant.
	for seed := range uint64(40) {
		e, ok, _ := CorruptSpan(SpanSwap, "We waited an hour there.", seed)
		if !ok || !strings.ContainsRune("aeiou", rune(e.Edited()[0])) {
			t.Fatalf("seed %d: %q", seed, e.Text)
		}
		e, ok, _ = CorruptSpan(SpanSwap, "We saw a dog there.", seed)
		if !ok || strings.ContainsRune("aeiou", rune(e.Edited()[0])) {
			t.Fatalf("seed %d: %q", seed, e.Text)
		}
	}
}

// TestCorruptSpanInvariants checks every kind on varied sentences: the
// edit is deterministic, confined to [Start, End), valid UTF-8, never on
// the first word, and differs from the original.
func TestCorruptSpanInvariants(t *testing.T) {
	texts := []string{
		"The city council voted on Tuesday to extend the bus network into the northern suburbs.",
		"Heavy rain is expected across the coast tonight, with 40 mm falling by 9 pm.",
		"A week has 7 days and a year has 12 months.",
		"Über café naïve the résumé was fine.",
	}
	for _, kind := range SpanKinds() {
		applied := 0
		for _, text := range texts {
			for seed := range uint64(25) {
				e, ok, err := CorruptSpan(kind, text, seed)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					continue
				}
				applied++
				again, _, _ := CorruptSpan(kind, text, seed)
				if again != e {
					t.Fatalf("%s not deterministic", kind)
				}
				if !utf8.ValidString(e.Text) || e.Start <= 0 || e.End > len(e.Text) || e.Start >= e.End {
					t.Fatalf("%s: bad edit %+v", kind, e)
				}
				first := words(text)[0]
				if e.Start < first.end {
					t.Fatalf("%s edited the first word: %+v", kind, e)
				}
				// Outside the span the text is unchanged (for a duplicate,
				// removing the copy and its space gives the original back).
				restored := e.Text[:e.Start] + e.Original + e.Text[e.End:]
				if kind == SpanDuplicate {
					restored = e.Text[:e.Start-1] + e.Text[e.End:]
				}
				if restored != text {
					t.Fatalf("%s: edit leaks outside its span: %q vs %q", kind, e.Text, text)
				}
				if kind != SpanDuplicate && e.Edited() == e.Original {
					t.Fatalf("%s: nothing changed: %+v", kind, e)
				}
				if kind == SpanMash {
					for _, c := range e.Edited() {
						if !unicode.IsLower(c) || c > unicode.MaxASCII {
							t.Fatalf("mash word %q has a non-letter", e.Edited())
						}
					}
				}
			}
		}
		if applied == 0 {
			t.Errorf("%s never applied", kind)
		}
	}
}

func TestTokenOffsets(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		tokens []string
		want   [][2]int
		err    bool
	}{
		{"byte-level BPE", "The cat sat.", []string{"The", " cat", " sat", "."}, [][2]int{{0, 3}, {3, 7}, {7, 11}, {11, 12}}, false},
		{"sentencepiece dummy prefix", "The cat", []string{"▁The", "▁cat"}, [][2]int{{0, 3}, {3, 7}}, false},
		{"decoded leading space", "The cat", []string{" The", " cat"}, [][2]int{{0, 3}, {3, 7}}, false},
		{"bos is zero width", "Hi there", []string{"<s>", "▁Hi", "▁there"}, [][2]int{{0, 0}, {0, 2}, {2, 8}}, false},
		{"byte fallback", "a€b", []string{"▁a", "<0xE2>", "<0x82>", "<0xAC>", "b"}, [][2]int{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}}, false},
		{"partial utf-8 bytes", "aж", []string{"a", "\xd0", "\xb6"}, [][2]int{{0, 1}, {1, 2}, {2, 3}}, false},
		{"literal angle text", "x <b> y", []string{"x", " <", "b", ">", " y"}, [][2]int{{0, 1}, {1, 3}, {3, 4}, {4, 5}, {5, 7}}, false},
		{"mismatch", "The cat", []string{"The", " dog"}, nil, true},
		{"too short", "The cat", []string{"The"}, nil, true},
		{"too long", "The", []string{"The", " cat"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TokenOffsets(tt.text, tt.tokens)
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), "do not reproduce") {
					t.Fatalf("err = %v, want an alignment error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestTokensInSpan(t *testing.T) {
	text := "The bus bus network."
	toks := []string{"The", " bus", " bus", " net", "work", "."}
	tests := []struct {
		start, end int
		want       []int
	}{
		{8, 11, []int{2}},     // the second "bus" (its token carries the space before it)
		{12, 19, []int{3, 4}}, // "network" spans two tokens
		{7, 8, []int{2}},      // the space alone belongs to " bus"
		{0, 20, []int{0, 1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		got, err := TokensInSpan(text, toks, tt.start, tt.end)
		if err != nil || len(got) != len(tt.want) {
			t.Fatalf("[%d,%d): %v %v, want %v", tt.start, tt.end, got, err, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Fatalf("[%d,%d): %v, want %v", tt.start, tt.end, got, tt.want)
			}
		}
	}
	for _, bad := range [][2]int{{3, 3}, {-1, 2}, {5, 21}} {
		if _, err := TokensInSpan(text, toks, bad[0], bad[1]); err == nil {
			t.Errorf("span %v accepted", bad)
		}
	}
	// A SentencePiece BOS never counts as edited, even for a span at 0.
	if got, err := TokensInSpan("Hi there", []string{"<s>", "▁Hi", "▁there"}, 0, 2); err != nil || len(got) != 1 || got[0] != 1 {
		t.Errorf("got %v %v, want [1]", got, err)
	}
}

func TestEvaluateTokens(t *testing.T) {
	tests := []struct {
		name              string
		cases             []TokenCase
		auroc, top1, top3 float64
		prompts           int
	}{
		{
			// Edited token 2 is the highest after position 0 (which is
			// ignored despite its 9): top-1 and top-3 hit, AUROC 1.
			name:  "perfect",
			cases: []TokenCase{{Scores: []float64{9, 1, 5, 2}, Edited: []int{2}}},
			auroc: 1, top1: 1, top3: 1, prompts: 1,
		},
		{
			// Prompt A: edited 0.5 beats 0.1 and 0.2, loses to 0.9 and 0.7:
			// rank 3 → top-3 hit only. Prompt B: edited [1, 2] with 0.3 and
			// 0.8 vs others 0.6, 0.1: best edited 0.8 is first → both hit.
			// AUROC over pos {0.5, 0.3, 0.8} vs neg {0.9, 0.7, 0.1, 0.2, 0.6, 0.1}:
			// 0.5 beats 3 (0.1,0.2,0.1), 0.3 beats 3, 0.8 beats 5 (all but 0.9) → 11/18.
			name: "mixed",
			cases: []TokenCase{
				{Scores: []float64{0, 0.9, 0.7, 0.5, 0.1, 0.2}, Edited: []int{3}},
				{Scores: []float64{0, 0.3, 0.8, 0.6, 0.1}, Edited: []int{1, 2}},
			},
			auroc: 11.0 / 18, top1: 0.5, top3: 1, prompts: 2,
		},
		{
			// A tie at the top counts against the edited token (pessimistic):
			// edited 0.5 ties one other → rank 2. AUROC: 0.5 vs {0.5, 0.1}: (0.5+1)/2.
			name:  "tie",
			cases: []TokenCase{{Scores: []float64{0, 0.5, 0.5, 0.1}, Edited: []int{2}}},
			auroc: 0.75, top1: 0, top3: 1, prompts: 1,
		},
		{
			// Edited only at position 0: the prompt is left out; the other counts.
			name: "position 0 edit skipped",
			cases: []TokenCase{
				{Scores: []float64{5, 1, 2}, Edited: []int{0}},
				{Scores: []float64{0, 1, 2}, Edited: []int{1}},
			},
			auroc: 0, top1: 0, top3: 1, prompts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := EvaluateTokens(tt.cases)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(m.AUROC-tt.auroc) > 1e-12 || m.Top1 != tt.top1 || m.Top3 != tt.top3 || m.Prompts != tt.prompts {
				t.Errorf("got %+v, want AUROC %v top1 %v top3 %v prompts %d", m, tt.auroc, tt.top1, tt.top3, tt.prompts)
			}
		})
	}
	for name, cs := range map[string][]TokenCase{
		"none usable":  {{Scores: []float64{1, 2}, Edited: []int{1}}},
		"out of range": {{Scores: []float64{1, 2, 3}, Edited: []int{3}}},
		"nan":          {{Scores: []float64{0, math.NaN(), 3}, Edited: []int{2}}},
		"empty":        nil,
	} {
		if _, err := EvaluateTokens(cs); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseSpanKinds(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		want    []string
		wantErr string
	}{
		{"mashword", []string{"mashword"}, ""},
		{" Digit ,mashword,digit", []string{"digit", "mashword"}, ""},
		{"all", SpanKinds(), ""},
		{"swap,all", append([]string{"swap"}, slices.DeleteFunc(SpanKinds(), func(k string) bool { return k == "swap" })...), ""},
		{"mash", nil, `unknown span corruption "mash"`},
		{" , ", nil, "no span corruption kind given"},
	} {
		got, err := ParseSpanKinds(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q = %q, %v; want %q", tc.spec, got, err, tc.want)
		}
	}
}
