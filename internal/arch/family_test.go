package arch_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	_ "github.com/lmood/lmood/internal/arch/all"
)

// fakeFile is GGUF metadata without tensors.
type fakeFile map[string]any

func (f fakeFile) String(k string) (string, bool)          { v, ok := f[k].(string); return v, ok }
func (f fakeFile) Uint(k string) (uint64, bool)            { v, ok := f[k].(int); return uint64(v), ok }
func (f fakeFile) Float(k string) (float64, bool)          { v, ok := f[k].(float64); return v, ok }
func (f fakeFile) Bool(k string) (bool, bool)              { v, ok := f[k].(bool); return v, ok }
func (f fakeFile) TensorDims(name string) ([]uint64, bool) { return nil, false }

// TestRegistry: families register themselves by general.architecture, and
// an architecture no family handles is refused naming what is supported.
func TestRegistry(t *testing.T) {
	got := arch.Supported()
	for _, want := range []string{"gemma2", "gemma3", "llama", "qwen2"} {
		if !slices.Contains(got, want) || !arch.IsSupported(want) {
			t.Errorf("Supported() = %v, lacks %s", got, want)
		}
		if f, ok := arch.Lookup(want); !ok || f.Name != want {
			t.Errorf("Lookup(%s) = %+v, %v", want, f, ok)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("Supported() = %v, not sorted", got)
	}
	for _, name := range []string{"", "bert", "LLAMA"} {
		_, err := arch.FromGGUF(fakeFile{"general.architecture": name})
		if !errors.Is(err, arch.ErrUnsupported) || !strings.Contains(err.Error(), "llama") {
			t.Errorf("FromGGUF(%q) = %v, want ErrUnsupported listing the families", name, err)
		}
		if _, err := arch.Decode(name, []byte(`{}`)); !errors.Is(err, arch.ErrUnsupported) {
			t.Errorf("Decode(%q) = %v, want ErrUnsupported", name, err)
		}
	}
}

// TestRegisterTwice: a second family under one name is a programming error.
func TestRegisterTwice(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("registering llama twice did not panic")
		}
	}()
	f, _ := arch.Lookup("llama")
	arch.Register(f)
}

// TestDimsCheck: impossible numbers from a corrupt manifest are refused.
func TestDimsCheck(t *testing.T) {
	ok := arch.Dims{Arch: "x", Layers: 2, Dim: 8, Heads: 2, KVHeads: 1, HeadDim: 4, FFN: 16, Vocab: 10, ContextLength: 32}
	for _, tc := range []struct {
		name string
		mod  func(*arch.Dims)
		bad  bool
	}{
		{"fine", func(*arch.Dims) {}, false},
		{"embed scale", func(d *arch.Dims) { d.EmbedScale = 25.3 }, false},
		{"no layers", func(d *arch.Dims) { d.Layers = 0 }, true},
		{"odd head dim", func(d *arch.Dims) { d.HeadDim = 3 }, true},
		{"kv heads do not divide", func(d *arch.Dims) { d.Heads = 3; d.KVHeads = 2 }, true},
		{"negative scale", func(d *arch.Dims) { d.EmbedScale = -1 }, true},
	} {
		d := ok
		tc.mod(&d)
		if err := d.Check(); (err != nil) != tc.bad {
			t.Errorf("%s: Check() = %v", tc.name, err)
		}
	}
	if s := (arch.Dims{}).Scale(); s != 1 {
		t.Errorf("zero EmbedScale scales by %v, want 1", s)
	}
}
