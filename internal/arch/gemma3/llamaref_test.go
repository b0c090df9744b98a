package gemma3_test

import (
	"testing"

	"github.com/lmood/lmood/internal/testutil"
)

// TestLlamaCpp compares the logits of synthetic gemma3 models at every
// position with llama.cpp's on the same GGUF: 7 blocks (blk.5 global, the
// others sliding-window), a 10-token prompt longer than the window (3), q/k
// norms, head dim 16 ≠ dim/heads, both rotary bases (and a local base other
// than the default, from rope.freq_base_swa), linear rope scaling, final
// logit soft-capping (a cap of 0.5, small enough to change the logits).
func TestLlamaCpp(t *testing.T) {
	untied := defaultTiny()
	untied.Untied, untied.Seed = true, 12
	scaled := defaultTiny()
	scaled.RopeScaling, scaled.RopeFactor, scaled.Seed = "linear", 8, 13
	local := defaultTiny()
	local.LocalBase, local.Seed = 100, 14
	capped := defaultTiny()
	capped.Extra, capped.Seed = map[string]float32{"final_logit_softcapping": 0.5}, 15
	for _, tc := range []struct {
		name string
		tiny tiny
	}{{"tied-window3", defaultTiny()}, {"untied", untied}, {"linear-rope-scaling", scaled}, {"local-rope-base", local}, {"final-softcap", capped}} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.CheckTinyLlamaRef(t, writeTiny(t, tc.tiny), testutil.TinyPrompt)
		})
	}
}
