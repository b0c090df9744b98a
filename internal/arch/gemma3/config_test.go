package gemma3_test

import (
	"math"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/gemma3"
	"github.com/lmood/lmood/internal/arch/gemmacore"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/store"
)

// TestConfigFromGGUF: the configuration read from a tiny gemma3 file, and
// what is refused before any conversion (naming the field).
func TestConfigFromGGUF(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*tiny)
		err  string
	}{
		{"tiny", func(*tiny) {}, ""},
		{"linear rope scaling", func(m *tiny) { m.RopeScaling, m.RopeFactor = "linear", 8 }, ""},
		{"yarn rope scaling", func(m *tiny) { m.RopeScaling, m.RopeFactor = "yarn", 4 }, `rope scaling "yarn"`},
		{"final soft-capping", func(m *tiny) { m.Extra = map[string]float32{"final_logit_softcapping": 30} }, ""},
		{"negative final soft-capping", func(m *tiny) { m.Extra = map[string]float32{"final_logit_softcapping": -3} }, "final_logit_softcapping"},
		{"infinite final soft-capping", func(m *tiny) {
			m.Extra = map[string]float32{"final_logit_softcapping": float32(math.Inf(1))}
		}, "final_logit_softcapping"},
		{"attention soft-capping", func(m *tiny) { m.Extra = map[string]float32{"attn_logit_softcapping": 50} }, "attn_logit_softcapping"},
		{"epsilon too large", func(m *tiny) { m.Extra = map[string]float32{"attention.layer_norm_rms_epsilon": 1} }, "layer_norm_rms_epsilon"},
		{"local rope base", func(m *tiny) { m.LocalBase = 100 }, ""},
		{"NaN local rope base", func(m *tiny) { m.LocalBase = math.NaN() }, "gemma3.rope.freq_base_swa"},
		{"q norm of the wrong width", func(m *tiny) { m.BadTensor = "blk.1.attn_q_norm.weight" }, "blk.1.attn_q_norm.weight"},
		{"post-norm of the wrong width", func(m *tiny) { m.BadTensor = "blk.0.post_ffw_norm.weight" }, "blk.0.post_ffw_norm.weight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := defaultTiny()
			tc.mod(&m)
			path := writeTiny(t, m)
			st := &store.Store{Root: t.TempDir()}
			man, err := st.Import(path, "tiny", store.Source{Kind: "file"}, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("import: %v, want an error naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, ok := man.Config.Config.(gemma3.Config)
			if !ok || man.Arch != "gemma3" {
				t.Fatalf("manifest arch %q config %T", man.Arch, man.Config.Config)
			}
			wantLocal := 10000.0
			if m.LocalBase != 0 {
				wantLocal = m.LocalBase
			}
			if c.HeadDim != 16 || c.Window != 3 || c.RopeLocal != wantLocal || c.RopeGlobal != 1e6 || c.Pattern != 6 ||
				c.QueryScale != 0.25 || !c.TiedOutput || man.Config.Scale() != float32(c.EmbedScale) {
				t.Errorf("config = %+v", c)
			}
			if m.RopeScaling == "linear" && c.RopeScale != 8 {
				t.Errorf("rope scale = %v, want 8", c.RopeScale)
			}
			// The manifest decodes back through the registry.
			opened, err := st.Open("tiny")
			if err != nil {
				t.Fatal(err)
			}
			defer opened.Close()
			if got, ok := opened.Config().Config.(gemma3.Config); !ok || got != c {
				t.Errorf("reopened config %+v, want %+v", opened.Config().Config, c)
			}
		})
	}
}

// TestGlobalPattern: every sixth block attends globally (llama.cpp's
// gemma3 pattern): blk.5, blk.11, blk.17 of the 18-block 270M.
func TestGlobalPattern(t *testing.T) {
	c := gemma3.Config{Config: gemmacore.Config{Pattern: gemma3.Pattern}}
	var global []int
	for i := 0; i < 18; i++ {
		if c.Global(i) {
			global = append(global, i)
		}
	}
	if len(global) != 3 || global[0] != 5 || global[1] != 11 || global[2] != 17 {
		t.Errorf("global blocks %v, want [5 11 17]", global)
	}
}

// TestEmbeddingsScaled: hidden state 0 is the embedding row times √d,
// what the first block sees.
func TestEmbeddingsScaled(t *testing.T) {
	path := writeTiny(t, defaultTiny())
	st := &store.Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", store.Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, err := m.Embeddings([]int{7})
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ti, _ := f.Tensor(arch.TokenEmbd)
	raw, err := f.ReadTensorF32(ti)
	if err != nil {
		t.Fatal(err)
	}
	d := 32
	for j := 0; j < d; j++ {
		want := raw[7*d+j] * float32(5.656854249492381) // √32
		if diff := got[j] - want; diff > 1e-5 || diff < -1e-5 {
			t.Fatalf("embedding[%d] = %v, want √32 × %v = %v", j, got[j], raw[7*d+j], want)
		}
	}
}
