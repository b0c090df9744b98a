package eval

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var samples = []string{
	"Eggplants are purple.",
	"Alan Turing predicted that computers would one day become powerful enough to think.",
	"A flower is the reproductive structure found in flowering plants.",
	"x",
	"Hi",
	"   ",
	"naïve café — déjà vu, 東京 and 🙂 emoji",
	"line one\nline two\ttabbed  double-spaced",
	"bad \xff utf8",
}

func TestKinds(t *testing.T) {
	want := []string{"charnoise", "homoglyph", "mash", "scramble", "script", "shuffle"}
	if got := Kinds(); !slices.Equal(got, want) {
		t.Fatalf("Kinds() = %v", got)
	}
	_, err := Corrupt("nope", "text", 1)
	if err == nil || !strings.Contains(err.Error(), "scramble") {
		t.Fatalf("unknown kind error %v should list kinds", err)
	}
}

func TestCorruptProperties(t *testing.T) {
	for _, kind := range Kinds() {
		for _, s := range samples {
			for seed := uint64(0); seed < 20; seed++ {
				a, err := Corrupt(kind, s, seed)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := Corrupt(kind, s, seed)
				if a != b {
					t.Fatalf("%s not deterministic on %q", kind, s)
				}
				if !utf8.ValidString(a) {
					t.Fatalf("%s produced invalid UTF-8 from %q: %q", kind, s, a)
				}
				if a == "" {
					t.Fatalf("%s emptied %q", kind, s)
				}
			}
		}
		if out, _ := Corrupt(kind, "", 3); out != "" {
			t.Errorf("%s of empty = %q", kind, out)
		}
	}
}

func TestCorruptSeedsDiffer(t *testing.T) {
	s := samples[1]
	for _, kind := range []string{KindShuffle, KindCharNoise, KindMash, KindScramble} {
		seen := map[string]bool{}
		for seed := uint64(0); seed < 10; seed++ {
			out, _ := Corrupt(kind, s, seed)
			if out == s {
				t.Errorf("%s seed %d left the text unchanged", kind, seed)
			}
			seen[out] = true
		}
		if len(seen) < 8 {
			t.Errorf("%s: only %d distinct outputs over 10 seeds", kind, len(seen))
		}
	}
}

func TestShuffle(t *testing.T) {
	for _, s := range samples[:3] {
		out, _ := Corrupt(KindShuffle, s, 7)
		if out == s {
			t.Errorf("shuffle left %q unchanged", s)
		}
		w1, w2 := strings.Fields(s), strings.Fields(out)
		slices.Sort(w1)
		slices.Sort(w2)
		if !slices.Equal(w1, w2) || len(out) != len(s) {
			t.Errorf("shuffle changed the words: %q -> %q", s, out)
		}
	}
	s := "two  words\n"
	out, _ := Corrupt(KindShuffle, s, 1)
	if out != "words  two\n" {
		t.Errorf("whitespace not kept in place: %q", out)
	}
	if out, _ := Corrupt(KindShuffle, "same same", 1); out != "same same" {
		t.Errorf("identical words: %q", out)
	}
}

func TestScramble(t *testing.T) {
	s := "Scrambling letters inside words keeps them readable, mostly."
	out, _ := Corrupt(KindScramble, s, 5)
	if out == s {
		t.Fatal("scramble left text unchanged")
	}
	in, got := strings.Fields(s), strings.Fields(out)
	if len(in) != len(got) {
		t.Fatalf("word count changed: %q", out)
	}
	for i := range in {
		a, b := []rune(in[i]), []rune(got[i])
		if len(a) != len(b) || a[0] != b[0] || a[len(a)-1] != b[len(b)-1] {
			t.Errorf("word %q -> %q: ends or length changed", in[i], got[i])
		}
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Errorf("word %q -> %q: letters changed", in[i], got[i])
		}
	}
	if out, _ := Corrupt(KindScramble, "a an the", 1); out != "a an the" {
		t.Errorf("short words changed: %q", out)
	}
}

func TestCharNoise(t *testing.T) {
	s := strings.Repeat("the quick brown fox jumps over the lazy dog ", 50)
	out, _ := Corrupt(KindCharNoise, s, 11)
	// Non-letters are never touched: the spaces survive in order.
	if strings.Count(out, " ") != strings.Count(s, " ") {
		t.Fatal("charnoise changed non-letters")
	}
	// Count edited words as a loose rate check: with 12% per letter and
	// ~3.9 letters per word, about 1-(0.88^3.9) = 39% of words change.
	in, got := strings.Fields(s), strings.Fields(out)
	changed := 0
	for i := range in {
		if in[i] != got[i] {
			changed++
		}
	}
	rate := float64(changed) / float64(len(in))
	if rate < 0.3 || rate > 0.5 {
		t.Errorf("word change rate %.2f, expected about 0.39", rate)
	}
	// Single letter: always edited, never emptied.
	for seed := uint64(0); seed < 30; seed++ {
		out, _ := Corrupt(KindCharNoise, "x", seed)
		if out == "x" || out == "" {
			t.Fatalf("seed %d: %q", seed, out)
		}
	}
	if out, _ := Corrupt(KindCharNoise, "123 !", 1); out != "123 !" {
		t.Errorf("text without letters changed: %q", out)
	}
}

func TestMash(t *testing.T) {
	const keys = "asdfghjkl;qwertyuiopzxcvbnm,./ "
	for _, s := range samples {
		out, _ := Corrupt(KindMash, s, 2)
		if utf8.RuneCountInString(out) != utf8.RuneCountInString(strings.ToValidUTF8(s, "\uFFFD")) {
			t.Errorf("mash length %d for %q", utf8.RuneCountInString(out), s)
		}
		if strings.Trim(out, keys) != "" || out[0] == ' ' {
			t.Errorf("mash %q has unexpected characters", out)
		}
	}
}

func TestScriptAndHomoglyph(t *testing.T) {
	s := "Eggplants are purple, says Alan Turing in 1950."
	out, _ := Corrupt(KindScript, s, 0)
	for _, c := range out {
		if c < 128 && unicode.IsLetter(c) {
			t.Fatalf("script left Latin letter %q in %q", c, out)
		}
	}
	if want := "Еггплантс аре пурпле, саыс Алан Туринг ин 1950."; out != want {
		t.Errorf("script output %q, want %q", out, want)
	}
	if got, _ := Corrupt(KindScript, "xyz", 0); got != "ксыз" {
		t.Errorf("script(xyz) = %q", got)
	}
	h, _ := Corrupt(KindHomoglyph, s, 0)
	if utf8.RuneCountInString(h) != utf8.RuneCountInString(s) || h == s {
		t.Fatalf("homoglyph %q", h)
	}
	for i, c := range []rune(h) {
		orig := []rune(s)[i]
		if c != orig && !unicode.Is(unicode.Cyrillic, c) {
			t.Errorf("homoglyph replaced %q by non-Cyrillic %q", orig, c)
		}
	}
	for k, v := range homoglyph {
		if r, _ := utf8.DecodeRuneInString(v); !unicode.Is(unicode.Cyrillic, r) || utf8.RuneCountInString(v) != 1 {
			t.Errorf("homoglyph[%q] = %q is not one Cyrillic rune", k, v)
		}
	}
}
