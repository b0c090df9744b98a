package llama

import (
	"math"
	"strings"
	"testing"
)

// md is GGUF metadata for tests.
type md map[string]any

func (m md) String(k string) (string, bool) { v, ok := m[k].(string); return v, ok }
func (m md) Uint(k string) (uint64, bool)   { v, ok := m[k].(int); return uint64(v), ok }
func (m md) Float(k string) (float64, bool) { v, ok := m[k].(float64); return v, ok }

func smolMD() md {
	return md{
		"general.architecture": "llama", "llama.block_count": 30, "llama.embedding_length": 576,
		"llama.attention.head_count": 9, "llama.attention.head_count_kv": 3, "llama.feed_forward_length": 1536,
		"llama.context_length": 8192, "llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.rope.freq_base": 100000.0,
	}
}

// TestConfigSanity: metadata no real model has is refused before any
// conversion, and the error names the field.
func TestConfigSanity(t *testing.T) {
	tests := []struct {
		name string
		mod  func(md)
		err  string
	}{
		{"real model", func(md) {}, ""},
		{"rope +Inf", func(m md) { m["llama.rope.freq_base"] = math.Inf(1) }, "llama.rope.freq_base"},
		{"rope NaN", func(m md) { m["llama.rope.freq_base"] = math.NaN() }, "llama.rope.freq_base"},
		{"rope zero", func(m md) { m["llama.rope.freq_base"] = 0.0 }, "llama.rope.freq_base"},
		{"epsilon 1e38", func(m md) { m["llama.attention.layer_norm_rms_epsilon"] = 1e38 }, "layer_norm_rms_epsilon"},
		{"epsilon negative", func(m md) { m["llama.attention.layer_norm_rms_epsilon"] = -1e-5 }, "layer_norm_rms_epsilon"},
		{"epsilon at the limit", func(m md) { m["llama.attention.layer_norm_rms_epsilon"] = 1e-2 }, ""},
		{"context 2^40", func(m md) { m["llama.context_length"] = 1 << 40 }, "llama.context_length"},
		{"too many blocks", func(m md) { m["llama.block_count"] = 100000 }, "llama.block_count"},
		{"heads not dividing dim", func(m md) { m["llama.attention.head_count"] = 7 }, "not divisible"},
		{"kv heads above heads", func(m md) { m["llama.attention.head_count_kv"] = 18 }, "head_count_kv"},
		{"huge ffn", func(m md) { m["llama.feed_forward_length"] = 1 << 30 }, "llama.feed_forward_length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := smolMD()
			tt.mod(m)
			_, err := ConfigFromMetadata(m, 49152, false)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want one naming %q", err, tt.err)
			}
		})
	}
	if _, err := ConfigFromMetadata(smolMD(), MaxVocab+1, false); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("vocab above the cap: %v", err)
	}
}

// TestCheckTensorShape: tensors contradicting the metadata (an embedding
// with 0 columns, a norm of the wrong length) are refused before converting.
func TestCheckTensorShape(t *testing.T) {
	c, err := ConfigFromMetadata(smolMD(), 49152, false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dims []uint64
		err  string
	}{
		{TokenEmbd, []uint64{576, 49152}, ""},
		{TokenEmbd, []uint64{0, 49152}, "embedding_length 576 × vocabulary 49152"},
		{TokenEmbd, []uint64{576, 1}, "token_embd.weight has dims [576 1]"},
		{OutputNorm, []uint64{576}, ""},
		{OutputNorm, []uint64{575}, "output_norm.weight"},
		{Block(3, "attn_norm.weight"), []uint64{576, 1}, "attn_norm.weight"},
		{Block(0, "attn_k.weight"), []uint64{576, 192}, ""},
		{Block(0, "attn_k.weight"), []uint64{576, 576}, "head_count_kv 3"},
		{Block(0, "ffn_down.weight"), []uint64{1536, 576}, ""},
		{Block(0, "ffn_down.weight"), []uint64{1535, 576}, "feed_forward_length 1536"},
	}
	for _, tt := range tests {
		err := c.CheckTensorShape(tt.name, tt.dims)
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("CheckTensorShape(%s, %v) = %v, want %q", tt.name, tt.dims, err, tt.err)
		}
	}
}
