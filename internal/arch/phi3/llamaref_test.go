package phi3_test

import (
	"testing"

	"github.com/lmood/lmood/internal/testutil"
)

// TestLlamaCpp compares the logits of synthetic phi3 models at every
// position with llama.cpp's on the same GGUF: fused q/k/v and gate/up with
// an untied head, and separate q/k/v with a tied head.
func TestLlamaCpp(t *testing.T) {
	sep := defaultTiny()
	sep.Separate, sep.Tied, sep.Seed = true, true, 32
	for _, tc := range []struct {
		name string
		tiny tiny
	}{{"fused-qkv", defaultTiny()}, {"separate-qkv-tied", sep}} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckTinyLlamaRef(t, writeTiny(t, tc.tiny), testutil.TinyPrompt)
		})
	}
}
