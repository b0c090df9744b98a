package qwen3_test

import (
	"testing"

	"github.com/lmood/lmood/internal/testutil"
)

// TestLlamaCpp compares the logits of synthetic qwen3 models (per-head q/k
// norms, head dim 16 ≠ dim/heads) at every position with llama.cpp's on the
// same GGUF.
func TestLlamaCpp(t *testing.T) {
	untied := defaultTiny()
	untied.Untied, untied.Seed = true, 22
	for _, tc := range []struct {
		name string
		tiny tiny
	}{{"tied", defaultTiny()}, {"untied", untied}} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckTinyLlamaRef(t, writeTiny(t, tc.tiny), testutil.TinyPrompt)
		})
	}
}
