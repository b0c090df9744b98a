package eval

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Span corruption kinds accepted by [CorruptSpan]. Each edits ONE word (or
// number) inside a sentence and reports where the edit is, so that a
// token-level score can be judged on whether it points at it. The first
// word of the text is never edited: position 0 is left out of token-level
// metrics.
const (
	// SpanSwap replaces a noun by an unrelated concrete noun from a fixed
	// list (in the plural when the noun looks plural, capitalised when it
	// was): "the bus network" → "the bus giraffe". The noun is found by a
	// heuristic: the last word of a run of up to three lowercase words
	// after a determiner (the, a, this, their, ...), the run ending at
	// punctuation or a function word.
	SpanSwap = "swap"
	// SpanMash replaces a word by keyboard mash of the same length (at
	// least 4 keys, letters from the three letter rows).
	SpanMash = "mashword"
	// SpanHomoglyph writes a word with Cyrillic look-alike letters (see
	// KindHomoglyph); only words with at least one such letter qualify.
	SpanHomoglyph = "homoglyphword"
	// SpanScript transliterates a word into Cyrillic (see KindScript).
	SpanScript = "scriptword"
	// SpanDuplicate repeats a word: "the bus network" → "the bus bus
	// network". The edited span is the second copy.
	SpanDuplicate = "dupword"
	// SpanDigit replaces one digit of a number by another digit. Texts
	// without a number are skipped. The edited span is that one digit (the
	// number's other digits are unchanged, and tokenizers that split
	// numbers into single digits give them tokens of their own).
	SpanDigit = "digit"
)

var spanKinds = map[string]func(text string, words []span, r *rand.Rand) (SpanEdit, bool){
	SpanSwap:      swapNoun,
	SpanMash:      replaceWord(mashWord, func(string) bool { return true }),
	SpanHomoglyph: replaceWord(func(w string, _ *rand.Rand) string { return mapLetters(w, homoglyph) }, hasHomoglyph),
	SpanScript:    replaceWord(func(w string, _ *rand.Rand) string { return mapLetters(w, translit) }, isASCIIWord),
	SpanDuplicate: duplicateWord,
	SpanDigit:     swapDigit,
}

// SpanKinds returns the valid span corruption kinds, sorted.
func SpanKinds() []string {
	ks := make([]string, 0, len(spanKinds))
	for k := range spanKinds {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// SpanEdit is a text with one edited span.
type SpanEdit struct {
	Kind       string
	Text       string // the corrupted text
	Start, End int    // byte span [Start, End) of the edit in Text
	Original   string // what the edited span replaced (for SpanDuplicate: the word repeated)
}

// Edited returns the edited span of the text.
func (e SpanEdit) Edited() string { return e.Text[e.Start:e.End] }

// CorruptSpan edits one span of text as kind says. The result is a
// deterministic function of (kind, text, seed). ok is false (and err nil)
// when the text offers nothing the kind can edit, for example no number
// for SpanDigit or no determiner phrase for SpanSwap. An unknown kind
// yields an error listing the valid ones.
func CorruptSpan(kind, text string, seed uint64) (e SpanEdit, ok bool, err error) {
	f, known := spanKinds[kind]
	if !known {
		return SpanEdit{}, false, fmt.Errorf("eval: unknown span corruption %q (valid: %s)", kind, strings.Join(SpanKinds(), ", "))
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	var h uint64 = 0x84222325cbf29ce4
	for i := 0; i < len(kind); i++ {
		h = (h ^ uint64(kind[i])) * 0x100000001b3
	}
	e, ok = f(text, words(text), rand.New(rand.NewPCG(seed, h)))
	if !ok {
		return SpanEdit{}, false, nil
	}
	e.Kind = kind
	return e, true, nil
}

// span is a byte range of a text.
type span struct{ start, end int }

// words returns the maximal runs of letters of text, in order.
func words(text string) []span {
	var ws []span
	start := -1
	for i, c := range text {
		if unicode.IsLetter(c) {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			ws = append(ws, span{start, i})
			start = -1
		}
	}
	if start >= 0 {
		ws = append(ws, span{start, len(text)})
	}
	return ws
}

// edit replaces text[s.start:s.end] by rep.
func edit(text string, s span, rep string) SpanEdit {
	return SpanEdit{
		Text:     text[:s.start] + rep + text[s.end:],
		Start:    s.start,
		End:      s.start + len(rep),
		Original: text[s.start:s.end],
	}
}

// eligible returns the words after the first that pass keep and have at
// least three letters.
func eligible(text string, ws []span, keep func(string) bool) []span {
	var out []span
	for i, w := range ws {
		if i == 0 || utf8.RuneCountInString(text[w.start:w.end]) < 3 || !keep(text[w.start:w.end]) {
			continue
		}
		out = append(out, w)
	}
	return out
}

func replaceWord(rewrite func(string, *rand.Rand) string, keep func(string) bool) func(string, []span, *rand.Rand) (SpanEdit, bool) {
	return func(text string, ws []span, r *rand.Rand) (SpanEdit, bool) {
		cands := eligible(text, ws, keep)
		if len(cands) == 0 {
			return SpanEdit{}, false
		}
		w := cands[r.IntN(len(cands))]
		rep := rewrite(text[w.start:w.end], r)
		if rep == text[w.start:w.end] {
			return SpanEdit{}, false
		}
		return edit(text, w, rep), true
	}
}

func hasHomoglyph(w string) bool {
	for _, c := range w {
		if _, ok := homoglyph[c]; ok {
			return true
		}
	}
	return false
}

func isASCIIWord(w string) bool {
	for _, c := range w {
		if c > unicode.MaxASCII {
			return false
		}
	}
	return true
}

// mashWord returns keyboard mash as long as w (at least 4 keys): one run
// of letters from one of the letter rows, so that it reads as one word.
func mashWord(w string, r *rand.Rand) string {
	n := max(4, utf8.RuneCountInString(w))
	b := make([]byte, n)
	for i := range b {
		row := strings.TrimRight(mashRows[r.IntN(len(mashRows))], ";,./") // letter keys only
		b[i] = row[r.IntN(len(row))]
	}
	return string(b)
}

func duplicateWord(text string, ws []span, r *rand.Rand) (SpanEdit, bool) {
	cands := eligible(text, ws, func(string) bool { return true })
	if len(cands) == 0 {
		return SpanEdit{}, false
	}
	w := cands[r.IntN(len(cands))]
	word := text[w.start:w.end]
	// "bus network" → "bus bus network": the copy follows the word and a space.
	at := w.end + 1
	return SpanEdit{
		Text:     text[:w.end] + " " + word + text[w.end:],
		Start:    at,
		End:      at + len(word),
		Original: word,
	}, true
}

func swapDigit(text string, _ []span, r *rand.Rand) (SpanEdit, bool) {
	var nums []span
	start := -1
	for i := 0; i <= len(text); i++ {
		digit := i < len(text) && text[i] >= '0' && text[i] <= '9'
		if digit && start < 0 {
			start = i
		} else if !digit && start >= 0 {
			if start > 0 { // like a first word, a leading number is never edited
				nums = append(nums, span{start, i})
			}
			start = -1
		}
	}
	if len(nums) == 0 {
		return SpanEdit{}, false
	}
	n := nums[r.IntN(len(nums))]
	k := r.IntN(n.end - n.start)
	old := text[n.start+k]
	d := byte('0' + r.IntN(9))
	if d >= old {
		d++ // one of the nine other digits
	}
	at := span{n.start + k, n.start + k + 1}
	return edit(text, at, string(d)), true
}

// determiners open the noun phrases SpanSwap looks in.
var determiners = set("the a an this that these those his her its their our my your some every each no another")

// functionWords end a noun phrase: prepositions, conjunctions, auxiliaries,
// pronouns and a few adverbs a determiner phrase is often followed by.
var functionWords = set("of in on at to for from with by into onto over under about after before between through during " +
	"near across along around against without within and or but nor so yet as than that which who whom whose where when " +
	"is are was were be been being has have had do does did will would can could shall should may might must " +
	"it he she they we you i this these those there here not also just only still even then now " +
	"today tonight tomorrow yesterday overnight again soon later ago away back up down out off")

func set(words string) map[string]bool {
	m := map[string]bool{}
	for w := range strings.FieldsSeq(words) {
		m[w] = true
	}
	return m
}

// concreteNouns replace nouns in SpanSwap: everyday objects and animals
// unrelated to each other, each pluralised by adding "s".
var concreteNouns = []string{
	"giraffe", "toaster", "saxophone", "submarine", "pineapple", "trombone", "igloo", "umbrella",
	"anvil", "canoe", "lobster", "wheelbarrow", "harpoon", "teapot", "kangaroo", "bagpipe",
	"doorknob", "penguin", "cupcake", "hammock",
}

// nouns returns the nouns SpanSwap may replace: for each determiner, the
// last of up to three following lowercase words that are not function
// words, the run ending at the first word followed by anything other than
// a single space.
func nouns(text string, ws []span) []span {
	var out []span
	for i := 1; i < len(ws); i++ {
		if !determiners[strings.ToLower(text[ws[i-1].start:ws[i-1].end])] || text[ws[i-1].end:ws[i].start] != " " {
			continue
		}
		last := -1
		for j := i; j < len(ws) && j < i+3; j++ {
			w := text[ws[j].start:ws[j].end]
			if w != strings.ToLower(w) || functionWords[w] || determiners[w] || len(w) < 3 || verbLike(w) {
				break
			}
			last = j
			if j+1 < len(ws) && text[ws[j].end:ws[j+1].start] != " " {
				break // punctuation (or a digit) ends the phrase
			}
		}
		if last >= 0 && (len(out) == 0 || out[len(out)-1] != ws[last]) {
			out = append(out, ws[last])
		}
	}
	return out
}

// commonVerbs are irregular past forms and frequent verbs that follow a
// noun phrase's head and would otherwise be taken for it.
var commonVerbs = set("left said made took gave went came found kept held told began brought bought built caught " +
	"felt grew heard knew led lost met paid ran rose sat saw sent set shut sold spent stood struck swept taught " +
	"thought threw won wrote says makes takes gives goes comes finds keeps holds tells remains seems")

// verbLike guesses that w is a verb or an adverb rather than a noun: one
// of commonVerbs, or a past form (-ed), a gerund (-ing) or an adverb
// (-ly) long enough not to be a short noun (bed, king, fly).
func verbLike(w string) bool {
	n := len(w)
	return commonVerbs[w] ||
		(n > 4 && strings.HasSuffix(w, "ed")) ||
		(n > 5 && strings.HasSuffix(w, "ing")) ||
		(n > 4 && strings.HasSuffix(w, "ly"))
}

// determinerBefore returns the lowercased determiner that opens the noun
// phrase ending at w ("" if none is found within three words).
func determinerBefore(text string, ws []span, w span) string {
	i := slices.Index(ws, w)
	for j := i - 1; j >= 0 && j >= i-3; j-- {
		if d := strings.ToLower(text[ws[j].start:ws[j].end]); determiners[d] {
			return d
		}
	}
	return ""
}

func swapNoun(text string, ws []span, r *rand.Rand) (SpanEdit, bool) {
	cands := nouns(text, ws)
	if len(cands) == 0 {
		return SpanEdit{}, false
	}
	w := cands[r.IntN(len(cands))]
	old := text[w.start:w.end]
	// Keep "a"/"an" right, so that the noun is the only thing edited.
	var pool []string
	for _, n := range concreteNouns {
		vowel := strings.ContainsRune("aeiou", rune(n[0]))
		switch det := determinerBefore(text, ws, w); {
		case strings.HasPrefix(old, n): // never "replace" a word by itself
		case det == "a" && vowel, det == "an" && !vowel:
		default:
			pool = append(pool, n)
		}
	}
	rep := pool[r.IntN(len(pool))]
	if strings.HasSuffix(old, "s") && !strings.HasSuffix(old, "ss") {
		rep += "s"
	}
	return edit(text, w, rep), true
}

// ParseSpanKinds splits a comma-separated list of span corruption kinds,
// checking each against [SpanKinds] and dropping repeats. "all" means
// every kind.
func ParseSpanKinds(spec string) ([]string, error) {
	var out []string
	for k := range strings.SplitSeq(spec, ",") {
		k = strings.TrimSpace(strings.ToLower(k))
		var ks []string
		switch {
		case k == "":
		case k == "all":
			ks = SpanKinds()
		case slices.Contains(SpanKinds(), k):
			ks = []string{k}
		default:
			return nil, fmt.Errorf("unknown span corruption %q (valid: %s, or all)", k, strings.Join(SpanKinds(), ", "))
		}
		for _, x := range ks {
			if !slices.Contains(out, x) {
				out = append(out, x)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no span corruption kind given (valid: %s, or all)", strings.Join(SpanKinds(), ", "))
	}
	return out, nil
}
