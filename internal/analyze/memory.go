package analyze

import (
	"fmt"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/store"
)

// RuntimeBytes is the memory an analyzing process takes besides the
// weights and the forward batch: the Go runtime, the tokenizer, the
// onnxruntime library and its per-session state. Peak RSS minus weights
// and batch was 40–90 MiB on SmolLM2-135M and Qwen2.5-Coder-0.5B (README,
// "Memory"); rounded up.
const RuntimeBytes = 100 << 20

// arenaFactor scales the analyzer's estimate of a batch's live tensors
// (rowsPerBatch) to what onnxruntime's allocator actually held at the peak:
// measured 0.9× on SmolLM2-135M and 1.55× on Qwen2.5-Coder-0.5B for
// ~770-token prompts (its arena grows in large chunks), rounded up.
const arenaFactor = 1.6

// Memory estimates what an Analyzer takes at its peak, in bytes.
type Memory struct {
	// Weights are the stored weights its onnxruntime sessions load: the
	// blocks up to the deepest point measured (and the output head for
	// the logits site or the logit baselines), at the store's precision.
	Weights int64
	// Batch is the largest forward pass: the batch budget (BatchMiB), or
	// less when 64 copies of the longest prompt allowed (MaxTokens) need
	// less, or one copy when even one exceeds it; times the allocator's
	// overhead measured on real models (1.6).
	Batch int64
	// Runtime is RuntimeBytes.
	Runtime int64
}

// Total is the estimated peak.
func (m Memory) Total() int64 { return m.Weights + m.Batch + m.Runtime }

// String describes the estimate ("1.2 GiB: weights 0.9 GiB, …").
func (m Memory) String() string {
	return fmt.Sprintf("%s (weights %s, forward batch %s, runtime %s)", Bytes(m.Total()), Bytes(m.Weights), Bytes(m.Batch), Bytes(m.Runtime))
}

// Bytes formats a byte count in MiB or GiB.
func Bytes(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// EstimateMemory estimates the peak memory of New(m, opt) and analyses
// with it, without opening any session: graphs are built in memory only
// to list the weights they read.
func EstimateMemory(m *store.Model, opt Options) (Memory, error) {
	opt, points, m, err := prepare(m, opt)
	if err != nil {
		return Memory{}, err
	}
	cfg := m.Config()
	w, err := m.GraphWeightBytes(arch.GraphOptions{Outputs: points})
	if err != nil {
		return Memory{}, err
	}
	if opt.Surprisal {
		for _, g := range []arch.GraphOptions{{Outputs: []arch.Point{{Site: SiteNorm, Index: cfg.Layers}}}, {Head: true}} {
			n, err := m.GraphWeightBytes(g)
			if err != nil {
				return Memory{}, err
			}
			w += n
		}
	}
	a := &Analyzer{cfg: cfg, opt: opt, budget: opt.BatchMiB << 20, widths: make([]int, len(points))}
	for i, p := range points {
		a.widths[i] = cfg.Width(p.Site)
	}
	// A shorter prompt can fill the budget better than the longest one
	// (more copies fit), so the bound is the budget itself unless even the
	// longest prompt's full batch needs less, or one copy needs more.
	row := int64(a.rowBytes(opt.MaxTokens))
	batch := min(int64(a.budget), row*int64(a.rowsLimit()))
	batch = max(batch, row)
	batch = int64(float64(batch) * arenaFactor)
	return Memory{Weights: w, Batch: batch, Runtime: RuntimeBytes}, nil
}
