package gemma2_test

import (
	"testing"

	"github.com/lmood/lmood/internal/testutil"
)

// TestLlamaCpp compares the logits of synthetic gemma2 models at every
// position with llama.cpp's on the same GGUF: soft-capped attention scores
// and logits, alternating sliding-window layers with a window (3, 4)
// shorter than the prompt, head dim different from dim/heads, grouped
// kv heads.
func TestLlamaCpp(t *testing.T) {
	gqa := defaultTiny()
	gqa.KVHeads, gqa.Window, gqa.Seed = 1, 4, 22
	for _, tc := range []struct {
		name string
		tiny tiny
	}{{"default", defaultTiny()}, {"one-kv-head", gqa}} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckTinyLlamaRef(t, writeTiny(t, tc.tiny), prompt)
		})
	}
}
