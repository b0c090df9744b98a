package llama_test

import (
	"testing"

	"github.com/lmood/lmood/internal/testutil"
)

// TestLlamaCpp compares the logits of synthetic llama and qwen2 models at
// every position with llama.cpp's on the same GGUF: llama with grouped-query
// attention and a tied head (GGUF's interleaved rotary layout), llama with
// as many KV heads as heads, and qwen2 with q/k/v biases, rotate-half rotary
// and an untied head.
func TestLlamaCpp(t *testing.T) {
	qwen := testutil.DefaultTiny()
	qwen.Arch, qwen.Untied, qwen.Layers = "qwen2", true, 3
	mha := testutil.DefaultTiny()
	mha.KVHeads = mha.Heads
	for _, tc := range []struct {
		name string
		tiny testutil.Tiny
	}{{"llama-gqa-tied", testutil.DefaultTiny()}, {"llama-mha", mha}, {"qwen2-bias-untied", qwen}} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckTinyLlamaRef(t, testutil.WriteTiny(t, tc.tiny), testutil.TinyPrompt)
		})
	}
}

// realPrompts are the prompts of the real-model llama.cpp comparisons.
var realPrompts = []string{
	"The quick brown fox jumps over the lazy dog.",
	"def add(a, b):\n    return a + b  # 12345 émigré",
	"Eggplants are fire-engine red.",
}

// TestLlamaCppReal compares the logits of the real SmolLM2-135M (llama,
// Q4_1) and Qwen2.5-Coder-0.5B (qwen2, Q4_K_M) at every position (lmood's
// f32 store) with llama.cpp's on the same GGUF; see testutil.RealLlamaRef
// for the tolerances.
func TestLlamaCppReal(t *testing.T) {
	t.Run("smollm2-135m", func(t *testing.T) {
		testutil.LlamaRef(t)
		m := testutil.RealModel(t)
		defer m.Close()
		testutil.RealLlamaRef(t, m, testutil.GGUF(t), realPrompts, testutil.RealLlamaRefTol, testutil.RealLlamaRefTop1)
	})
	t.Run("qwen2.5-coder-0.5b", func(t *testing.T) {
		path := qwenGGUF(t)
		testutil.LlamaRef(t)
		testutil.Runtime(t)
		m := testutil.SharedModel(t, path, "qwen")
		defer m.Close()
		testutil.RealLlamaRef(t, m, path, realPrompts, testutil.RealLlamaRefTol, testutil.RealLlamaRefTop1)
	})
}

// TestLlamaCppRealF32 separates the two causes of the gap above: with
// SmolLM2's weights dequantized to float32 in the GGUF, llama.cpp
// multiplies in float32 as lmood does, and the logits must agree to
// float32 rounding over 30 blocks (RealF32LlamaRefTol), with the same top-1
// token everywhere: what remains in TestLlamaCppReal is llama.cpp's 8-bit
// activations, not a different reading of the model.
func TestLlamaCppRealF32(t *testing.T) {
	testutil.LlamaRef(t)
	m := testutil.RealModel(t)
	defer m.Close()
	f32 := testutil.DequantizedGGUF(t, testutil.GGUF(t))
	testutil.RealLlamaRef(t, m, f32, realPrompts, testutil.RealF32LlamaRefTol, 1)
}
