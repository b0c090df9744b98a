package eval

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Corruption kinds accepted by [Corrupt].
const (
	// KindShuffle permutes the whitespace-separated words, keeping the
	// whitespace between them in place. Punctuation stays attached to its
	// word.
	KindShuffle = "shuffle"
	// KindCharNoise edits about 12% of the letters: each letter is, with
	// probability 0.12, replaced by a different random ASCII letter (case
	// kept), followed by an inserted random letter, or deleted (1/3 each).
	// At least one edit is made when the text has a letter.
	KindCharNoise = "charnoise"
	// KindMash replaces the text by keyboard mash of the same length in
	// runes: runs of 2-7 keys drawn from the three letter rows (weighted
	// towards the home row, including ; , . /) separated by single spaces.
	// Only the length of the input is used.
	KindMash = "mash"
	// KindScramble shuffles the letters inside every word of four or more
	// letters, keeping its first and last letter (a word is a maximal run
	// of letters).
	KindScramble = "scramble"
	// KindScript transliterates ASCII Latin letters phonetically into
	// Cyrillic (a→а, b→б, c→ц, ..., x→кс, y→ы, z→з), keeping case. It is
	// deterministic and ignores the seed; text without ASCII letters is
	// returned unchanged.
	KindScript = "script"
	// KindHomoglyph swaps Latin letters that have a Cyrillic look-alike
	// (a c e i j o p s x y and A B C E H I J K M O P S T X Y) for it: the
	// text looks the same to a reader but tokenizes completely
	// differently. It ignores the seed.
	KindHomoglyph = "homoglyph"
)

var kinds = map[string]func(string, *rand.Rand) string{
	KindShuffle:   shuffleWords,
	KindCharNoise: charNoise,
	KindMash:      mash,
	KindScramble:  scramble,
	KindScript:    func(s string, _ *rand.Rand) string { return mapLetters(s, translit) },
	KindHomoglyph: func(s string, _ *rand.Rand) string { return mapLetters(s, homoglyph) },
}

// Kinds returns the valid corruption kinds, sorted.
func Kinds() []string {
	ks := make([]string, 0, len(kinds))
	for k := range kinds {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Corrupt returns a corrupted twin of text. The result is a deterministic
// function of (kind, text, seed) for a given Go release, is valid UTF-8
// (invalid input bytes are first replaced by U+FFFD) and is non-empty
// whenever text is non-empty. Some kinds can return the text unchanged
// when it offers nothing to corrupt (a single word for shuffle, no long
// words for scramble, no Latin letters for script/homoglyph). An unknown
// kind yields an error listing the valid ones.
//
// The random stream depends on (seed, kind) only, not on the text: two
// texts of equal length corrupted with the same seed get the same noise.
// To corrupt a set, give each text its own seed, as [CorruptAll] does.
func Corrupt(kind, text string, seed uint64) (string, error) {
	f, ok := kinds[kind]
	if !ok {
		return "", fmt.Errorf("eval: unknown corruption %q (valid: %s)", kind, strings.Join(Kinds(), ", "))
	}
	if text == "" {
		return "", nil
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	var h uint64 = 0xcbf29ce484222325 // FNV-1a of the kind: one stream per kind
	for i := 0; i < len(kind); i++ {
		h = (h ^ uint64(kind[i])) * 0x100000001b3
	}
	out := f(text, rand.New(rand.NewPCG(seed, h)))
	if out == "" { // defensive: never turn text into nothing
		return text, nil
	}
	return out, nil
}

// splitKeep splits s into alternating runs for which in(r) is true or
// false; isIn[i] tells which kind run i is.
func splitKeep(s string, in func(rune) bool) (runs []string, isIn []bool) {
	start := 0
	cur := false
	for i, r := range s {
		b := in(r)
		if i == 0 {
			cur = b
			continue
		}
		if b != cur {
			runs = append(runs, s[start:i])
			isIn = append(isIn, cur)
			start, cur = i, b
		}
	}
	if len(s) > 0 {
		runs = append(runs, s[start:])
		isIn = append(isIn, cur)
	}
	return runs, isIn
}

// permute shuffles xs in place and, if that left it unchanged although
// not all elements are equal, rotates it by one so the result differs.
func permute[T comparable](xs []T, r *rand.Rand) {
	orig := slices.Clone(xs)
	r.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	if len(xs) > 1 && slices.Equal(xs, orig) {
		first := xs[0]
		copy(xs, xs[1:])
		xs[len(xs)-1] = first
	}
}

func shuffleWords(s string, r *rand.Rand) string {
	runs, isWord := splitKeep(s, func(c rune) bool { return !unicode.IsSpace(c) })
	var words []string
	for i, w := range runs {
		if isWord[i] {
			words = append(words, w)
		}
	}
	permute(words, r)
	var b strings.Builder
	k := 0
	for i, w := range runs {
		if isWord[i] {
			w = words[k]
			k++
		}
		b.WriteString(w)
	}
	return b.String()
}

func scramble(s string, r *rand.Rand) string {
	runs, isWord := splitKeep(s, unicode.IsLetter)
	var b strings.Builder
	for i, w := range runs {
		rs := []rune(w)
		if isWord[i] && len(rs) >= 4 {
			permute(rs[1:len(rs)-1], r)
			w = string(rs)
		}
		b.WriteString(w)
	}
	return b.String()
}

const charNoiseRate = 0.12

// randLetter returns a random ASCII letter different from c, in c's case.
func randLetter(c rune, r *rand.Rand) rune {
	x := 'a' + rune(r.IntN(26))
	if unicode.ToLower(c) == x {
		x = 'a' + (x-'a'+1)%26
	}
	if unicode.IsUpper(c) {
		x = unicode.ToUpper(x)
	}
	return x
}

func charNoise(s string, r *rand.Rand) string {
	in := []rune(s)
	var letters []int
	for i, c := range in {
		if unicode.IsLetter(c) {
			letters = append(letters, i)
		}
	}
	if len(letters) == 0 {
		return s
	}
	// op per rune index: 0 none, 1 replace, 2 insert after, 3 delete.
	ops := make([]byte, len(in))
	edits := 0
	for _, i := range letters {
		if r.Float64() < charNoiseRate {
			ops[i] = byte(1 + r.IntN(3))
			edits++
		}
	}
	if edits == 0 {
		ops[letters[r.IntN(len(letters))]] = 1
	}
	out := make([]rune, 0, len(in)+len(letters)/4+1)
	for i, c := range in {
		switch ops[i] {
		case 0:
			out = append(out, c)
		case 1:
			out = append(out, randLetter(c, r))
		case 2:
			out = append(out, c, randLetter(c, r))
		case 3:
		}
	}
	if len(out) == 0 { // every rune deleted: replace the first letter instead
		c := in[letters[0]]
		in[letters[0]] = randLetter(c, r)
		return string(in)
	}
	return string(out)
}

var mashRows = []string{"asdfghjkl;", "asdfghjkl;", "qwertyuiop", "zxcvbnm,./"}

func mash(s string, r *rand.Rand) string {
	n := utf8.RuneCountInString(s)
	out := make([]byte, 0, n)
	for len(out) < n {
		if len(out) > 0 {
			if n-len(out) < 2 { // no room for a space and a key
				out = append(out, mashRows[0][r.IntN(9)])
				continue
			}
			out = append(out, ' ')
		}
		row := mashRows[r.IntN(len(mashRows))]
		run := min(2+r.IntN(6), n-len(out))
		for k := 0; k < run; k++ {
			c := row[r.IntN(len(row))]
			if k == 0 && (c < 'a' || c > 'z') {
				c = row[r.IntN(7)] // start each run with a letter
			}
			out = append(out, c)
		}
	}
	return string(out)
}

var translit = map[rune]string{
	'a': "а", 'b': "б", 'c': "ц", 'd': "д", 'e': "е", 'f': "ф", 'g': "г",
	'h': "х", 'i': "и", 'j': "й", 'k': "к", 'l': "л", 'm': "м", 'n': "н",
	'o': "о", 'p': "п", 'q': "к", 'r': "р", 's': "с", 't': "т", 'u': "у",
	'v': "в", 'w': "в", 'x': "кс", 'y': "ы", 'z': "з",
}

var homoglyph = map[rune]string{
	'a': "а", 'c': "с", 'e': "е", 'i': "і", 'j': "ј", 'o': "о", 'p': "р",
	's': "ѕ", 'x': "х", 'y': "у",
	'A': "А", 'B': "В", 'C': "С", 'E': "Е", 'H': "Н", 'I': "І", 'J': "Ј",
	'K': "К", 'M': "М", 'O': "О", 'P': "Р", 'S': "Ѕ", 'T': "Т", 'X': "Х",
	'Y': "Ү",
}

// mapLetters replaces runes found in m. For a table with only lowercase
// keys (translit), uppercase ASCII letters map through their lowercase
// form and the first rune of the replacement is uppercased.
func mapLetters(s string, m map[rune]string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	_, hasUpper := m['A']
	for _, c := range s {
		if rep, ok := m[c]; ok {
			b.WriteString(rep)
			continue
		}
		if !hasUpper && c >= 'A' && c <= 'Z' {
			if rep, ok := m[unicode.ToLower(c)]; ok {
				first, size := utf8.DecodeRuneInString(rep)
				b.WriteRune(unicode.ToUpper(first))
				b.WriteString(rep[size:])
				continue
			}
		}
		b.WriteRune(c)
	}
	return b.String()
}
