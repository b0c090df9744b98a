package gpt2_test

import (
	"testing"

	"github.com/lmood/lmood/internal/testutil"
)

// TestLlamaCpp compares the logits of synthetic gpt2 models (learned
// positions, LayerNorm with bias, fused q/k/v with bias) at every position
// with llama.cpp's on the same GGUF.
func TestLlamaCpp(t *testing.T) {
	untied := defaultTiny()
	untied.Untied, untied.Seed = true, 42
	for _, tc := range []struct {
		name string
		tiny tiny
	}{{"tied", defaultTiny()}, {"untied", untied}} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckTinyLlamaRef(t, writeTiny(t, tc.tiny), testutil.TinyPrompt)
		})
	}
}
