package tokenize

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sugarme/tokenizer/pretokenizer"
)

// byteToChar and charToByte are the GPT-2 byte-level alphabet: every byte is
// shown as a printable rune (space is 'Ġ', newline 'Ċ', ...). They come from
// sugarme/tokenizer's table.
var (
	byteToChar [256]string
	charToByte = make(map[rune]byte, 256)
)

func init() {
	for b, c := range pretokenizer.BytesChar {
		byteToChar[b] = c
		r, _ := utf8.DecodeRuneInString(c)
		charToByte[r] = b
	}
}

// byteLevelDecode maps a byte-level token text back to raw bytes. Runes
// outside the byte alphabet are kept as their UTF-8 encoding.
func byteLevelDecode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if c, ok := charToByte[r]; ok {
			b.WriteByte(c)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// bpeModel is a byte-level BPE model.
//
// The merge loop is implemented here rather than with sugarme/tokenizer's
// model/bpe: sugarme orders its merge queue by rank only (its tie-breaker, a
// timestamp, is never set), so when the same pair occurs several times in a
// word (e.g. "aaaaa", runs of spaces, "----") it may merge them in the wrong
// order and produce IDs that differ from the reference. Hugging Face
// tokenizers and llama.cpp break rank ties by position, leftmost first,
// which is what mergeWord does.
type bpeModel struct {
	ids          map[string]int
	byteIDs      [256]int              // ID of each byte's single-char token, -1 if none
	merges       map[uint64]mergeValue // (left ID, right ID) -> rank and result
	ignoreMerges bool                  // use a whole piece found in the vocabulary as is

	// raw selects SentencePiece-style BPE over raw UTF-8 (the "gemma4"
	// model): symbols start as characters, spaces are written "▁", and a
	// character without a token falls back to <0xNN> byte tokens (byteIDs).
	// Without raw, symbols start as the bytes of the GPT-2 byte alphabet.
	raw bool
	// wholeNewlines makes a piece made only of newlines one token when the
	// vocabulary has it (the "gemma4" model).
	wholeNewlines bool

	mu    sync.RWMutex
	cache map[string]cachedWord
}

type mergeValue struct {
	rank int32
	id   int32
}

type cachedWord struct{ ids, lens []int }

const maxCacheEntries = 1 << 15

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newBPEModel(ids map[string]int, merges []string) (*bpeModel, error) {
	m := &bpeModel{
		ids:    ids,
		merges: make(map[uint64]mergeValue, len(merges)),
		cache:  make(map[string]cachedWord),
	}
	for b := range m.byteIDs {
		id, ok := ids[byteToChar[b]]
		if !ok {
			id = -1
		}
		m.byteIDs[b] = id
	}
	var sb strings.Builder
	for rank, line := range merges {
		// Split at the first space after the first character, as llama.cpp
		// does, so a token that is itself " " could still be merged.
		sp := -1
		if len(line) > 1 {
			if i := strings.IndexByte(line[1:], ' '); i >= 0 {
				sp = i + 1
			}
		}
		if sp < 0 {
			return nil, fmt.Errorf("tokenize: merge %d (%q) is not an \"a b\" pair", rank, line)
		}
		left, right := line[:sp], line[sp+1:]
		a, okA := ids[left]
		b, okB := ids[right]
		sb.Reset()
		sb.WriteString(left)
		sb.WriteString(right)
		c, okC := ids[sb.String()]
		if !okA || !okB || !okC {
			// Merges over tokens the vocabulary lacks can never fire.
			continue
		}
		k := pairKey(a, b)
		if _, dup := m.merges[k]; !dup { // the first (best) rank wins
			m.merges[k] = mergeValue{rank: int32(rank), id: int32(c)}
		}
	}
	return m, nil
}

// encodeWord returns the token IDs of one pre-tokenized piece and the number
// of input bytes each token covers.
func (m *bpeModel) encodeWord(w string) (ids, lens []int, err error) {
	m.mu.RLock()
	cw, ok := m.cache[w]
	m.mu.RUnlock()
	if ok {
		return cw.ids, cw.lens, nil
	}

	if m.ignoreMerges {
		var sb strings.Builder
		for i := 0; i < len(w); i++ {
			sb.WriteString(byteToChar[w[i]])
		}
		if id, ok := m.ids[sb.String()]; ok {
			ids, lens = []int{id}, []int{len(w)}
		}
	}
	if m.wholeNewlines && strings.Trim(w, "\n") == "" {
		if id, ok := m.ids[w]; ok {
			ids, lens = []int{id}, []int{len(w)}
		}
	}
	if ids == nil && m.raw {
		ids, lens, err = m.mergeRaw(w)
		if err != nil {
			return nil, nil, err
		}
	}
	if ids == nil {
		ids, lens, err = m.mergeWord(w)
		if err != nil {
			return nil, nil, err
		}
	}

	m.mu.Lock()
	if len(m.cache) >= maxCacheEntries {
		clear(m.cache)
	}
	m.cache[w] = cachedWord{ids, lens}
	m.mu.Unlock()
	return ids, lens, nil
}

// symbol is a node of the doubly linked list of a word's current tokens.
type symbol struct {
	id         int
	prev, next int // indices into the symbol slice, -1 at the ends
	n          int // bytes covered; 0 once merged into its left neighbour
}

// mergeCand is a candidate merge of symbols[pos] with its right neighbour.
type mergeCand struct {
	rank, pos int32
	id        int32
}

func (a mergeCand) less(b mergeCand) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// mergeHeap is a binary min-heap of merge candidates ordered by (rank, pos).
type mergeHeap []mergeCand

func (h *mergeHeap) push(c mergeCand) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeCand {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l, r, min := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].less(s[min]) {
			min = l
		}
		if r < len(s) && s[r].less(s[min]) {
			min = r
		}
		if min == i {
			break
		}
		s[i], s[min] = s[min], s[i]
		i = min
	}
	*h = s
	return top
}

// useRawUTF8 switches m to SentencePiece-style BPE over raw UTF-8 (see
// bpeModel.raw), with byte fallback to the vocabulary's <0xNN> tokens.
func (m *bpeModel) useRawUTF8() {
	m.raw, m.wholeNewlines = true, true
	for b := range m.byteIDs {
		id, ok := m.ids[fmt.Sprintf("<0x%02X>", b)]
		if !ok {
			id = -1
		}
		m.byteIDs[b] = id
	}
}

// mergeRaw applies the merges to the characters of w, a space being the
// token text "▁". A symbol left without a token (only possible for a single
// character the vocabulary lacks) becomes its UTF-8 bytes' <0xNN> tokens; the
// first of them covers the character's input bytes, the others none.
func (m *bpeModel) mergeRaw(w string) (ids, lens []int, err error) {
	if w == "" {
		return []int{}, []int{}, nil
	}
	syms := make([]symbol, 0, len(w))
	texts := make([]string, 0, len(w))
	for i, r := range w {
		text := w[i : i+utf8.RuneLen(r)]
		if r == ' ' {
			text = spaceMarker
		}
		id, ok := m.ids[text]
		if !ok {
			id = -1
		}
		n := len(syms)
		syms = append(syms, symbol{id: id, prev: n - 1, next: n + 1, n: utf8.RuneLen(r)})
		texts = append(texts, text)
	}
	syms[len(syms)-1].next = -1
	m.runMerges(syms)
	for i := 0; i >= 0; i = syms[i].next {
		if syms[i].id >= 0 {
			ids = append(ids, syms[i].id)
			lens = append(lens, syms[i].n)
			continue
		}
		for j := 0; j < len(texts[i]); j++ {
			b := texts[i][j]
			if m.byteIDs[b] < 0 {
				return nil, nil, fmt.Errorf("tokenize: vocabulary has no token for %q nor a <0x%02X> byte token", texts[i], b)
			}
			ids = append(ids, m.byteIDs[b])
			if j == 0 {
				lens = append(lens, syms[i].n)
			} else {
				lens = append(lens, 0)
			}
		}
	}
	return ids, lens, nil
}

// mergeWord applies the merges to the bytes of w: always the best-ranked
// adjacent pair next, leftmost first among equal ranks.
func (m *bpeModel) mergeWord(w string) (ids, lens []int, err error) {
	syms := make([]symbol, len(w))
	for i := 0; i < len(w); i++ {
		id := m.byteIDs[w[i]]
		if id < 0 {
			return nil, nil, fmt.Errorf("tokenize: vocabulary has no token for byte 0x%02X", w[i])
		}
		syms[i] = symbol{id: id, prev: i - 1, next: i + 1, n: 1}
	}
	syms[len(syms)-1].next = -1

	m.runMerges(syms)
	for i := 0; i >= 0; i = syms[i].next {
		ids = append(ids, syms[i].id)
		lens = append(lens, syms[i].n)
	}
	return ids, lens, nil
}

// runMerges merges the linked symbols in place: always the best-ranked
// adjacent pair next, leftmost first among equal ranks. Symbols with ID -1
// (no token) never merge.
func (m *bpeModel) runMerges(syms []symbol) {
	h := make(mergeHeap, 0, len(syms))
	try := func(pos int) {
		nx := syms[pos].next
		if nx < 0 {
			return
		}
		if syms[pos].id < 0 || syms[nx].id < 0 {
			return
		}
		if mv, ok := m.merges[pairKey(syms[pos].id, syms[nx].id)]; ok {
			h.push(mergeCand{rank: mv.rank, pos: int32(pos), id: mv.id})
		}
	}
	for i := 0; i+1 < len(syms); i++ {
		try(i)
	}
	for len(h) > 0 {
		c := h.pop()
		pos := int(c.pos)
		s := &syms[pos]
		if s.n == 0 || s.next < 0 {
			continue
		}
		nx := s.next
		// Skip candidates made stale by earlier merges.
		mv, ok := m.merges[pairKey(s.id, syms[nx].id)]
		if !ok || mv.id != c.id {
			continue
		}
		right := syms[nx]
		s.id = int(c.id)
		s.n += right.n
		s.next = right.next
		syms[nx].n = 0
		if right.next >= 0 {
			syms[right.next].prev = pos
		}
		if s.prev >= 0 {
			try(s.prev)
		}
		try(pos)
	}

}
