package nn

import "github.com/lmood/lmood/internal/arch"

// NormBalance names the vector that holds the factors folded into block
// i's attention-norm weight (arch.Fold.Record): the site "norm" divides
// the norm's output by it, so the site reads what the model defines.
func NormBalance(i int) string { return Block(i, "attn_norm.balance") }

// GatedFolds returns the exact rescalings (arch.Balanced) of block i of a
// pre-norm decoder with grouped-query attention and a gated MLP, in GGUF's
// names (attn_norm, attn_q/k/v, attn_output, ffn_norm, ffn_gate/up/down):
//
//   - attn_output's input channels into attn_v's output columns (and its
//     bias): a head's context is a weighted sum of value rows, so scaling
//     a value channel scales the context channels of every query head
//     that reads it (one factor per key/value channel);
//   - ffn_down's into ffn_up's columns: the MLP multiplies act(gate) by up
//     channel by channel;
//   - attn_q/k/v's (one factor per model channel, shared: they read the
//     same normed input) into attn_norm's weight, recorded for the site;
//   - ffn_gate/up's into ffn_norm's weight.
//
// The first two come first: the last two measure the value and up rows
// as the first two left them.
func GatedFolds(i, heads, kvHeads, headDim int, valueBias bool) []arch.Fold {
	b := func(n string) string { return Block(i, n+".weight") }
	value := []string{b("attn_v")}
	if valueBias {
		value = append(value, Block(i, "attn_v.bias"))
	}
	return []arch.Fold{
		{Consumers: []string{b("attn_output")}, Producers: value, Channel: arch.GroupedChannel(heads, kvHeads, headDim)},
		{Consumers: []string{b("ffn_down")}, Producers: []string{b("ffn_up")}},
		{Consumers: []string{b("attn_q"), b("attn_k"), b("attn_v")}, Producers: []string{b("attn_norm")}, Record: NormBalance(i)},
		{Consumers: []string{b("ffn_gate"), b("ffn_up")}, Producers: []string{b("ffn_norm")}},
	}
}
