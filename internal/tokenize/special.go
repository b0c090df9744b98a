package tokenize

import "sort"

// specialMatcher finds control and user-defined tokens literally present in
// the input. Matching is leftmost-longest, as in the Hugging Face tokenizers
// added-vocabulary (and equivalent to llama.cpp's longest-first partition
// for real vocabularies).
//
// sugarme/tokenizer has an AddedVocabulary for this, but its match
// resolution sorts candidates by token index rather than by position, so a
// text containing "<|im_end|> ... <|im_start|>" loses the first match; this
// small matcher replaces it.
type specialMatcher struct {
	byFirst map[byte][]string // candidates by first byte, longest first
	ids     map[string]int
}

// segment is a span of the input: a special token (id >= 0) or plain text
// (id == -1).
type segment struct {
	start, end int
	id         int
}

func newSpecialMatcher(tokens []string, ids map[string]int) *specialMatcher {
	m := &specialMatcher{byFirst: map[byte][]string{}, ids: ids}
	for _, s := range tokens {
		m.byFirst[s[0]] = append(m.byFirst[s[0]], s)
	}
	for _, list := range m.byFirst {
		sort.SliceStable(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	}
	return m
}

// split cuts text into plain-text and special-token segments, in order.
func (m *specialMatcher) split(text string) []segment {
	var segs []segment
	plain := 0
	for i := 0; i < len(text); {
		cands := m.byFirst[text[i]]
		matched := ""
		for _, c := range cands {
			if len(c) <= len(text)-i && text[i:i+len(c)] == c {
				matched = c
				break
			}
		}
		if matched == "" {
			i++
			continue
		}
		if plain < i {
			segs = append(segs, segment{start: plain, end: i, id: -1})
		}
		segs = append(segs, segment{start: i, end: i + len(matched), id: m.ids[matched]})
		i += len(matched)
		plain = i
	}
	if plain < len(text) {
		segs = append(segs, segment{start: plain, end: len(text), id: -1})
	}
	return segs
}
