package gemma2_test

import (
	"math"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/gemma2"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/store"
)

// TestConfigFromGGUF: the configuration read from tiny gemma2 files
// (llama.cpp's defaults where a key is absent) and its round trip through
// a manifest.
func TestConfigFromGGUF(t *testing.T) {
	large := defaultTiny()
	large.Layers = 46
	for _, tc := range []struct {
		name string
		mod  func(*tiny)
		want func(gemma2.Config) bool
	}{
		{"tiny", func(*tiny) {}, func(c gemma2.Config) bool {
			return c.AttnSoftcap == 1.5 && c.FinalSoftcap == 2 && c.Window == 3 && c.Pattern == 2 &&
				c.RopeGlobal == 10000 && c.RopeLocal == 10000 && c.QueryScale == 0.25 && c.EmbedScale == math.Sqrt(32)
		}},
		{"llama.cpp defaults", func(m *tiny) {
			m.Omit = map[string]bool{"attn_logit_softcapping": true, "final_logit_softcapping": true, "attention.sliding_window": true}
		}, func(c gemma2.Config) bool {
			return c.AttnSoftcap == gemma2.DefaultAttnSoftcap && c.FinalSoftcap == gemma2.DefaultFinalSoftcap && c.Window == 4096
		}},
		{"separate local rope base", func(m *tiny) {
			m.Extra = map[string]gguf.Value{"rope.freq_base": gguf.NewFloat32(1e6), "rope.freq_base_swa": gguf.NewFloat32(1e4)}
		}, func(c gemma2.Config) bool { return c.RopeGlobal == 1e6 && c.RopeLocal == 1e4 }},
		{"27B query scale", func(m *tiny) { m.Layers = 46 }, func(c gemma2.Config) bool {
			return c.QueryScale == 1/math.Sqrt(8) // 1/√(embedding_length/head_count), not 1/√16
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := defaultTiny()
			tc.mod(&m)
			st := &store.Store{Root: t.TempDir()}
			man, err := st.Import(writeTiny(t, m), "tiny", store.Source{Kind: "file"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			c, ok := man.Config.Config.(gemma2.Config)
			if !ok || man.Arch != "gemma2" {
				t.Fatalf("manifest arch %q config %T", man.Arch, man.Config.Config)
			}
			if !tc.want(c) || man.Config.Scale() != float32(c.EmbedScale) {
				t.Errorf("config = %+v", c)
			}
			opened, err := st.Open("tiny")
			if err != nil {
				t.Fatal(err)
			}
			defer opened.Close()
			if got, ok := opened.Config().Config.(gemma2.Config); !ok || got != c {
				t.Errorf("reopened config %+v, want %+v", opened.Config().Config, c)
			}
		})
	}
}

// TestRefused: what is refused before any conversion, with the field (or
// tensor) named.
func TestRefused(t *testing.T) {
	f32 := func(v float64) gguf.Value { return gguf.NewFloat32(float32(v)) }
	for _, tc := range []struct {
		name string
		mod  func(*tiny)
		want []string
	}{
		{"no block_count", func(m *tiny) { m.Omit = map[string]bool{"block_count": true} }, []string{"gemma2.block_count"}},
		{"no embedding_length", func(m *tiny) { m.Omit = map[string]bool{"embedding_length": true} }, []string{"gemma2.embedding_length"}},
		{"no epsilon", func(m *tiny) { m.Omit = map[string]bool{"attention.layer_norm_rms_epsilon": true} }, []string{"gemma2.attention.layer_norm_rms_epsilon"}},
		{"NaN attention cap", func(m *tiny) { m.Extra = map[string]gguf.Value{"attn_logit_softcapping": f32(math.NaN())} }, []string{"gemma2.attn_logit_softcapping", "NaN"}},
		{"infinite final cap", func(m *tiny) { m.Extra = map[string]gguf.Value{"final_logit_softcapping": f32(math.Inf(1))} }, []string{"gemma2.final_logit_softcapping", "+Inf"}},
		{"zero final cap", func(m *tiny) { m.Extra = map[string]gguf.Value{"final_logit_softcapping": f32(0)} }, []string{"gemma2.final_logit_softcapping"}},
		{"negative attention cap", func(m *tiny) { m.Extra = map[string]gguf.Value{"attn_logit_softcapping": f32(-50)} }, []string{"gemma2.attn_logit_softcapping"}},
		{"zero window", func(m *tiny) { m.Window = 0 }, []string{"gemma2.attention.sliding_window"}},
		{"per-layer window pattern", func(m *tiny) {
			m.Extra = map[string]gguf.Value{"attention.sliding_window_pattern": gguf.ArrayOf([]bool{true, false, true, false})}
		}, []string{"gemma2.attention.sliding_window_pattern", "per-layer list"}},
		{"NaN rope base", func(m *tiny) { m.Extra = map[string]gguf.Value{"rope.freq_base": f32(math.NaN())} }, []string{"gemma2.rope.freq_base"}},
		{"infinite local rope base", func(m *tiny) { m.Extra = map[string]gguf.Value{"rope.freq_base_swa": f32(math.Inf(1))} }, []string{"gemma2.rope.freq_base_swa"}},
		{"rope scaling", func(m *tiny) { m.Extra = map[string]gguf.Value{"rope.scaling.type": gguf.NewString("linear")} }, []string{`rope scaling "linear"`}},
		{"kv heads not dividing heads", func(m *tiny) { m.KVHeads = 3 }, []string{"head_count_kv"}},
		{"output.weight present", func(m *tiny) { m.Output = true }, []string{"output.weight"}},
		{"post-norm of the wrong width", func(m *tiny) { m.BadTensor = "blk.1.post_ffw_norm.weight" }, []string{"blk.1.post_ffw_norm.weight"}},
		{"q of the wrong width", func(m *tiny) { m.BadTensor = "blk.0.attn_q.weight" }, []string{"blk.0.attn_q.weight"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := defaultTiny()
			tc.mod(&m)
			path := writeTiny(t, m)
			checkRefused(t, path, tc.want...)
		})
	}
}

// checkRefused requires that importing path fails naming each of want,
// and that nothing is left in the store.
func checkRefused(t *testing.T, path string, want ...string) {
	t.Helper()
	st := &store.Store{Root: t.TempDir()}
	_, err := st.Import(path, "tiny", store.Source{Kind: "file"}, nil)
	if err == nil {
		t.Fatal("imported")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	if _, err := st.Open("tiny"); err == nil {
		t.Error("a refused import left a model")
	}
}

// TestRegistered: gemma2 is a supported architecture, and hidden state 0
// is the scaled embedding row (the nudged input itself).
func TestRegistered(t *testing.T) {
	if !arch.IsSupported("gemma2") {
		t.Fatalf("gemma2 not in %v", arch.Supported())
	}
	if r := (gemma2.Config{}).Resid0(); !r.Nudged || !strings.Contains(r.What, "√d") {
		t.Errorf("Resid0 = %+v", r)
	}
}
