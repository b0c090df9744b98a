package tokenize

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// spaceMarker is SentencePiece's visible space, U+2581.
const spaceMarker = "▁"

// spmModel is the SentencePiece-style BPE used by "llama" GGUF vocabularies
// (Llama 2, TinyLlama, Mistral, ...). Merges are driven by token scores:
// repeatedly the adjacent pair whose concatenation is a vocabulary token
// with the highest score is merged (leftmost first on ties). Characters that
// end up without a token fall back to <0xNN> byte tokens.
//
// sugarme/tokenizer has no equivalent (its BPE needs a merge list and knows
// no byte fallback), so this follows llama.cpp's algorithm directly.
type spmModel struct {
	ids            map[string]int
	scores         []float32
	byteIDs        [256]int
	unk            int
	addSpacePrefix bool
}

func newSPMModel(ids map[string]int, tokens []string, scores []float32, types []int32, addSpacePrefix bool) *spmModel {
	m := &spmModel{ids: ids, scores: scores, unk: -1, addSpacePrefix: addSpacePrefix}
	if id, ok := ids["<unk>"]; ok {
		m.unk = id
	}
	for i := range tokens {
		if types != nil && types[i] == typeUnknown {
			m.unk = i
			break
		}
	}
	if m.unk < 0 {
		m.unk = 0
	}
	for b := range m.byteIDs {
		id, ok := ids[fmt.Sprintf("<0x%02X>", b)]
		if !ok {
			// Some vocabularies carry raw single-byte tokens instead.
			if id, ok = ids[string([]byte{byte(b)})]; !ok {
				id = m.unk
			}
		}
		m.byteIDs[b] = id
	}
	return m
}

// surface returns the decoded text of token id whose vocabulary text is s.
func (m *spmModel) surface(id int, s string) string {
	if len(s) == 6 && strings.HasPrefix(s, "<0x") && s[5] == '>' {
		var b byte
		if _, err := fmt.Sscanf(s, "<0x%02X>", &b); err == nil && m.byteIDs[b] == id {
			return string([]byte{b})
		}
	}
	return strings.ReplaceAll(s, spaceMarker, " ")
}

func (m *spmModel) score(id int) float32 {
	if m.scores == nil {
		return 0
	}
	return m.scores[id]
}

// spmSymbol is a node of the linked list of current pieces. text is a span
// of the escaped text; origStart/origEnd is the span of the input it covers.
type spmSymbol struct {
	start, n           int // in the escaped text; n == 0 once merged away
	prev, next         int
	origStart, origEnd int
}

type spmBigram struct {
	left, right int
	score       float32
	size        int
}

// better reports whether a should be merged before b.
func (a spmBigram) better(b spmBigram) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

// encode tokenizes seg (plain text found at byte offset off of the input)
// and appends the tokens to dst. prevSpecial tells whether seg starts the
// text or follows a special token, where SentencePiece adds its space
// prefix.
func (m *spmModel) encode(dst []Token, seg string, off int, prevSpecial bool, surface []string) []Token {
	var esc strings.Builder
	var syms []spmSymbol
	add := func(s string, os, oe int) {
		syms = append(syms, spmSymbol{start: esc.Len(), n: len(s), prev: len(syms) - 1, next: len(syms) + 1, origStart: os, origEnd: oe})
		esc.WriteString(s)
	}
	if m.addSpacePrefix && prevSpecial {
		add(spaceMarker, off, off)
	}
	for i, r := range seg {
		sz := utf8.RuneLen(r)
		if r == ' ' {
			add(spaceMarker, off+i, off+i+sz)
		} else {
			add(seg[i:i+sz], off+i, off+i+sz)
		}
	}
	if len(syms) == 0 {
		return dst
	}
	syms[len(syms)-1].next = -1
	text := esc.String()

	var heap []spmBigram
	push := func(b spmBigram) {
		heap = append(heap, b)
		for i := len(heap) - 1; i > 0; {
			p := (i - 1) / 2
			if !heap[i].better(heap[p]) {
				break
			}
			heap[i], heap[p] = heap[p], heap[i]
			i = p
		}
	}
	pop := func() spmBigram {
		top := heap[0]
		last := len(heap) - 1
		heap[0] = heap[last]
		heap = heap[:last]
		for i := 0; ; {
			l, r, best := 2*i+1, 2*i+2, i
			if l < len(heap) && heap[l].better(heap[best]) {
				best = l
			}
			if r < len(heap) && heap[r].better(heap[best]) {
				best = r
			}
			if best == i {
				break
			}
			heap[i], heap[best] = heap[best], heap[i]
			i = best
		}
		return top
	}
	tryAdd := func(left, right int) {
		if left < 0 || right < 0 {
			return
		}
		l, r := syms[left], syms[right]
		piece := text[l.start : r.start+r.n]
		id, ok := m.ids[piece]
		if !ok {
			return
		}
		push(spmBigram{left: left, right: right, score: m.score(id), size: len(piece)})
	}
	for i := 1; i < len(syms); i++ {
		tryAdd(i-1, i)
	}
	for len(heap) > 0 {
		b := pop()
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue
		}
		l.n += r.n
		l.origEnd = r.origEnd
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		tryAdd(l.prev, b.left)
		tryAdd(b.left, l.next)
	}

	for i := 0; i >= 0; i = syms[i].next {
		s := syms[i]
		piece := text[s.start : s.start+s.n]
		if id, ok := m.ids[piece]; ok {
			dst = append(dst, Token{ID: id, Text: surface[id], Start: s.origStart, End: s.origEnd})
			continue
		}
		for j := 0; j < len(piece); j++ {
			id := m.byteIDs[piece[j]]
			dst = append(dst, Token{ID: id, Text: surface[id], Start: s.origStart, End: s.origEnd})
		}
	}
	return dst
}
