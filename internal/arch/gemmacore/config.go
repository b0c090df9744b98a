// Package gemmacore holds what lmood's gemma2 and gemma3 families share, as
// llama.cpp reads their GGUF files: the configuration (sliding-window
// layers interleaved with global ones, the query scale, the √d embedding
// scale), the tensor list, and the graph parts that are the same in both
// models (the two masks and rotary tables, the pre- and post-norms, the
// GeGLU MLP, the tied output head). It registers no architecture: each
// family writes its own attention and head, the parts where Gemma 2 and
// Gemma 3 differ (q/k norms, soft-capping), in its own package.
package gemmacore

import (
	"fmt"
	"math"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
)

// Config holds the hyper-parameters Gemma 2 and Gemma 3 share. Its JSON
// field names are those of the manifests lmood has written for gemma3.
type Config struct {
	nn.Hyper
	RMSEps     float64 `json:"rms_eps"`
	RopeGlobal float64 `json:"rope_global"` // rotary base of global layers
	RopeLocal  float64 `json:"rope_local"`  // rotary base of sliding-window layers
	RopeScale  float64 `json:"rope_scale"`  // linear rope scaling factor of global layers (1 = none)
	Window     int     `json:"window"`      // sliding window: a query sees keys less than Window positions back
	Pattern    int     `json:"pattern"`     // block i is global when (i+1) % Pattern == 0
	QueryScale float64 `json:"query_scale"` // queries are multiplied by it before q·k
	EmbedScale float64 `json:"embed_scale"` // √Dim
}

// Defaults are the per-family choices llama.cpp makes when reading the
// shared fields.
type Defaults struct {
	// Pattern is the sliding-window pattern when the file has no
	// attention.sliding_window_pattern (gemma2: 2, gemma3: 6).
	Pattern int
	// Window is the sliding window when the file has no
	// attention.sliding_window; 0 makes the field required.
	Window int
	// LocalBase is the rotary base of sliding-window layers when the file
	// has no rope.freq_base_swa; 0 means rope.freq_base.
	LocalBase float64
	// GlobalBase is the rotary base of global layers when the file has no
	// rope.freq_base.
	GlobalBase float64
	// LinearRope accepts linear rope scaling (rope.scaling.type "linear"),
	// applied to the global layers; otherwise any rope scaling is refused.
	LinearRope bool
	// LargeLayers is the block count of the size whose queries are scaled
	// by 1/√(embedding_length/head_count) instead of 1/√key_length (the
	// 27B models: 46 blocks for Gemma 2, 62 for Gemma 3).
	LargeLayers int
}

// Read reads the shared configuration of a GGUF file of architecture a,
// refusing (with the field named) what is missing, impossible or not
// implemented.
func Read(f arch.File, a string, d Defaults) (Config, error) {
	h, err := nn.ReadHyper(f, a)
	if err != nil {
		return Config{}, err
	}
	c := Config{Hyper: h, Pattern: d.Pattern, Window: d.Window, RopeScale: 1}
	// llama.cpp requires the epsilon of these families (no default).
	if _, ok := f.Float(a + ".attention.layer_norm_rms_epsilon"); !ok {
		return Config{}, fmt.Errorf("%s: GGUF metadata lacks %s.attention.layer_norm_rms_epsilon", a, a)
	}
	if c.RMSEps, err = nn.ReadFloat(f, a, "attention.layer_norm_rms_epsilon", 0, 0, nn.MaxEps); err != nil {
		return Config{}, err
	}
	if v, ok := f.Uint(a + ".attention.sliding_window"); ok {
		if v == 0 || v > nn.MaxContextLength {
			return Config{}, fmt.Errorf("%s: %s.attention.sliding_window = %d is outside 1..%d", a, a, v, nn.MaxContextLength)
		}
		c.Window = int(v)
	} else if d.Window == 0 {
		return Config{}, fmt.Errorf("%s: GGUF metadata lacks %s.attention.sliding_window", a, a)
	}
	if _, ok := f.Uint(a + ".attention.sliding_window_pattern"); !ok && has(f, a+".attention.sliding_window_pattern") {
		// llama.cpp also accepts a per-layer list; reading it as the
		// default period would silently approximate the model.
		return Config{}, fmt.Errorf("%s: %s.attention.sliding_window_pattern is not a single number (a per-layer list?): not supported", a, a)
	}
	if v, ok := f.Uint(a + ".attention.sliding_window_pattern"); ok && v > 0 {
		if v > nn.MaxLayers {
			return Config{}, fmt.Errorf("%s: %s.attention.sliding_window_pattern = %d is outside 1..%d", a, a, v, nn.MaxLayers)
		}
		c.Pattern = int(v)
	}
	if d.LinearRope {
		if c.RopeGlobal, err = nn.ReadFloat(f, a, "rope.freq_base", d.GlobalBase, 1, nn.MaxRopeBase); err != nil {
			return Config{}, err
		}
		if v, ok := f.Uint(a + ".rope.dimension_count"); ok && int(v) != c.HeadDim {
			return Config{}, fmt.Errorf("%s: partial rotary embeddings (%s.rope.dimension_count %d, head dim %d) are not supported", a, a, v, c.HeadDim)
		}
		if s, ok := f.String(a + ".rope.scaling.type"); ok && s != "" && s != "none" {
			if s != "linear" {
				return Config{}, fmt.Errorf("%s: rope scaling %q (%s.rope.scaling.type) is not supported (only linear)", a, s, a)
			}
			v, ok := f.Float(a + ".rope.scaling.factor")
			if !ok || !(v >= 1 && v <= 1024) {
				return Config{}, fmt.Errorf("%s: %s.rope.scaling.factor = %v is missing or outside [1, 1024]", a, a, v)
			}
			c.RopeScale = v
		}
	} else if c.RopeGlobal, err = nn.ReadRope(f, a, c.HeadDim, d.GlobalBase); err != nil {
		return Config{}, err
	}
	local := d.LocalBase
	if local == 0 {
		local = c.RopeGlobal
	}
	if c.RopeLocal, err = nn.ReadFloat(f, a, "rope.freq_base_swa", local, 1, nn.MaxRopeBase); err != nil {
		return Config{}, err
	}
	// llama.cpp (after gemma_pytorch): the 27B scales queries by
	// 1/√(d/heads), every other size by 1/√key_length.
	c.QueryScale = 1 / math.Sqrt(float64(c.HeadDim))
	if c.Layers == d.LargeLayers {
		c.QueryScale = 1 / math.Sqrt(float64(c.Dim/c.Heads))
	}
	c.EmbedScale = math.Sqrt(float64(c.Dim))
	return c, c.Check()
}

// Check refuses what no model has (a corrupt file or manifest), naming
// the field.
func (c Config) Check() error {
	if err := c.Hyper.Check(); err != nil {
		return err
	}
	a := c.Arch
	if c.Window <= 0 || c.Window > nn.MaxContextLength {
		return fmt.Errorf("%s: %s.attention.sliding_window = %d is outside 1..%d", a, a, c.Window, nn.MaxContextLength)
	}
	if c.Pattern <= 0 || c.Pattern > nn.MaxLayers {
		return fmt.Errorf("%s: %s.attention.sliding_window_pattern = %d is outside 1..%d", a, a, c.Pattern, nn.MaxLayers)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("%s: head dimension %d is odd; rotary embeddings need it even", a, c.HeadDim)
	}
	return nn.CheckFinite(a, map[string]float64{"rms_eps": c.RMSEps, "rope_global": c.RopeGlobal, "rope_local": c.RopeLocal,
		"rope_scale": c.RopeScale, "query_scale": c.QueryScale, "embed_scale": c.EmbedScale})
}

// Common returns the numbers every family has, with the √d embedding scale.
func (c Config) Common() arch.Dims {
	d := c.Hyper.Common()
	d.EmbedScale = c.EmbedScale
	return d
}

// Global reports whether block i (0-based, GGUF blk.i) attends globally;
// the others attend within the sliding window. It is llama.cpp's
// set_swa_pattern: block i is local when i % Pattern < Pattern-1.
func (c Config) Global(i int) bool { return (i+1)%c.Pattern == 0 }

// GGUF tensor names shared by the families.
const (
	OutputNorm = "output_norm.weight"
	Output     = "output.weight"
)

// Tensors lists the tensors a graph reads, in file order, with their GGUF
// dims: per block attn_norm, attn_q, attn_k, attn_v, with qkNorm
// attn_q_norm and attn_k_norm (head-dim long), attn_output,
// post_attention_norm, ffn_norm, ffn_gate, ffn_up, ffn_down,
// post_ffw_norm; then output_norm, and output unless the head is tied.
func (c Config) Tensors(qkNorm, tied bool) nn.Tensors {
	d, hd, f := c.Dim, c.HeadDim, c.FFN
	q, kv := c.Heads*hd, c.KVHeads*hd
	vec := func(name string, n int) nn.Tensor { return nn.Tensor{Name: name, Dims: []int{n}, Kind: nn.Vector} }
	ts := nn.Tensors{{Name: arch.TokenEmbd, Dims: []int{d, c.Vocab}, Kind: nn.Rows}}
	for i := 0; i < c.Layers; i++ {
		b := func(n string) string { return nn.Block(i, n) }
		ts = append(ts, vec(b("attn_norm.weight"), d),
			nn.Tensor{Name: b("attn_q.weight"), Dims: []int{d, q}},
			nn.Tensor{Name: b("attn_k.weight"), Dims: []int{d, kv}},
			nn.Tensor{Name: b("attn_v.weight"), Dims: []int{d, kv}})
		if qkNorm {
			ts = append(ts, vec(b("attn_q_norm.weight"), hd), vec(b("attn_k_norm.weight"), hd))
		}
		ts = append(ts,
			nn.Tensor{Name: b("attn_output.weight"), Dims: []int{q, d}},
			vec(b("post_attention_norm.weight"), d),
			vec(b("ffn_norm.weight"), d),
			nn.Tensor{Name: b("ffn_gate.weight"), Dims: []int{d, f}},
			nn.Tensor{Name: b("ffn_up.weight"), Dims: []int{d, f}},
			nn.Tensor{Name: b("ffn_down.weight"), Dims: []int{f, d}},
			vec(b("post_ffw_norm.weight"), d))
	}
	ts = append(ts, vec(OutputNorm, d))
	if !tied {
		ts = append(ts, nn.Tensor{Name: Output, Dims: []int{d, c.Vocab}})
	}
	return ts
}

// ShapeSource names the metadata tensor shapes come from, for errors.
func (c Config) ShapeSource() string {
	return fmt.Sprintf("embedding_length %d, head_count %d, head_count_kv %d, key_length %d, feed_forward_length %d, vocabulary %d",
		c.Dim, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.Vocab)
}

// Resid0 is what hidden state 0 is in both families.
func Resid0() arch.Resid0 {
	return arch.Resid0{What: "the token's embedding row × √d, what the first block sees", Nudged: true}
}

// has reports whether the file has key with a value of any type, when the
// file can list its keys (a *gguf.File can); it is false otherwise.
func has(f arch.Metadata, key string) bool {
	k, ok := f.(interface{ Keys() []string })
	if !ok {
		return false
	}
	for _, name := range k.Keys() {
		if name == key {
			return true
		}
	}
	return false
}

// Folds implements arch.Balanced: the rescalings of a gated pre-norm
// block (nn.GatedFolds). Gemma's norm weights are stored as 1 + w (see
// Graph.RMS), so folding into them is a plain product; the post-norms
// read outputs the folds leave unchanged.
func (c Config) Folds(i int) []arch.Fold {
	return nn.GatedFolds(i, c.Heads, c.KVHeads, c.HeadDim, false)
}
