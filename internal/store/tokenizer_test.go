package store_test

import (
	"errors"
	"testing"

	. "github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// TestStoreTokenizer: a converted model's tokenizer is available by name
// without opening its weights, and equals the one Model.Tokenizer builds.
func TestStoreTokenizer(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	tok, err := st.Tokenizer("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ref, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	a, err := tok.Encode("Ab Cd ef")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ref.Encode("Ab Cd ef")
	if len(a) == 0 || len(a) != len(b) || tok.VocabSize() != ref.VocabSize() {
		t.Fatalf("Store.Tokenizer encodes %v, Model.Tokenizer %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("token %d: %v vs %v", i, a[i], b[i])
		}
	}
	if _, err := st.Tokenizer("absent"); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent model: err = %v, want ErrNotFound", err)
	}
}

func TestStoreTokenizerKind(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	model, pre, err := st.TokenizerKind("tiny")
	if err != nil || model != "gpt2" || pre != "gpt-2" { // testutil.AddTinyVocab's metadata
		t.Errorf("TokenizerKind = %q, %q, %v; want gpt2, gpt-2", model, pre, err)
	}
}
