package tokenize

import "testing"

func TestSpecialIDs(t *testing.T) {
	v := toyByteLevel("smollm")
	v.Tokens = append(v.Tokens, "<unused>", "<user>")
	v.TokenTypes = append(v.TokenTypes, typeUnused, typeUserDefined)
	tok, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	if tok.BOS() != -1 || tok.EOS() != 0 {
		t.Errorf("BOS, EOS = %d, %d; want -1, 0", tok.BOS(), tok.EOS())
	}
	n := len(v.Tokens)
	tests := []struct {
		id   int
		want bool
	}{
		{0, true},         // control
		{bid('a'), false}, // byte-level normal token
		{257, false},      // merged token
		{n - 2, true},     // unused
		{n - 1, true},     // user-defined
		{-1, true},        // outside
		{n, true},         // outside
	}
	for _, tc := range tests {
		if got := tok.IsSpecial(tc.id); got != tc.want {
			t.Errorf("IsSpecial(%d) = %v, want %v", tc.id, got, tc.want)
		}
	}
	if id, ok := tok.ID("<|end|>"); !ok || id != 0 {
		t.Errorf("ID(<|end|>) = %d, %v", id, ok)
	}
	if _, ok := tok.ID("nope"); ok {
		t.Error("ID(nope) found")
	}
}
