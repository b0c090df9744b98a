package eval_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/eval"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// tokenLevelSentences is how many sentences of prompts/eval/plain.txt the
// real-model token-level run corrupts per kind.
const tokenLevelSentences = 20

// TestTokenLevelReal runs the whole token-level pipeline on the real
// default model (and on Qwen2.5-Coder-0.5B when LMOOD_TEST_GGUF_QWEN is
// set and LMOOD_TOKENLEVEL_QWEN=1): one-span corruptions of plain sentences, per-token drift ratio at
// the middle hidden state and per-token surprisal from internal/analyze,
// edited bytes mapped onto tokens, then token-level AUROC and top-1/top-3
// localisation. It asserts only invariants; the numbers are logged (run
// with -v) as a measurement.
func TestTokenLevelReal(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs a real model")
	}
	texts, err := eval.ReadTexts(filepath.Join("..", "..", "prompts", "eval", "plain.txt"))
	if err != nil {
		t.Fatal(err)
	}
	texts = texts[:tokenLevelSentences]
	t.Run("smollm2-135m", func(t *testing.T) {
		m := testutil.RealModel(t)
		defer m.Close()
		tokenLevel(t, m, texts)
	})
	t.Run("qwen2.5-coder-0.5b", func(t *testing.T) {
		// About 4x the time of the default model (several minutes on two
		// cores): a measurement to run on purpose, not in every test run.
		path := os.Getenv("LMOOD_TEST_GGUF_QWEN")
		if path == "" || os.Getenv("LMOOD_TOKENLEVEL_QWEN") != "1" {
			t.Skip("set LMOOD_TEST_GGUF_QWEN and LMOOD_TOKENLEVEL_QWEN=1 to measure Qwen too")
		}
		testutil.Runtime(t)
		st := &store.Store{Root: t.TempDir()}
		if _, err := st.Import(path, "qwen", store.Source{Kind: "file", Ref: path}, nil); err != nil {
			t.Fatal(err)
		}
		m, err := st.Open("qwen")
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		tokenLevel(t, m, texts)
	})
}

func tokenLevel(t *testing.T, m *store.Model, texts []string) {
	c := m.Config()
	an, err := analyze.New(m, analyze.Options{
		HiddenStates: []int{c.Middle()}, Samples: 32, Sigma: 0.01, Seed: 1, Surprisal: true,
	}, runtime.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer an.Close()
	var table strings.Builder
	fmt.Fprintf(&table, "%s, hidden state %d, K=32, sigma=0.01, %d sentences\n", m.Manifest.Name, c.Middle(), len(texts))
	fmt.Fprintf(&table, "%-14s %7s  %-22s  %-22s\n", "kind", "prompts", "drift AUROC top1 top3", "surprisal AUROC top1 top3")
	for _, kind := range eval.SpanKinds() {
		var drift, surp []eval.TokenCase
		for _, text := range texts {
			e, ok, err := eval.CorruptSpan(kind, text, eval.ItemSeed(1, text))
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				continue
			}
			res, err := an.Analyze(e.Text)
			if err != nil {
				t.Fatal(err)
			}
			toks := make([]string, len(res.Tokens))
			for i, tk := range res.Tokens {
				toks[i] = tk.Text
			}
			edited, err := eval.TokensInSpan(e.Text, toks, e.Start, e.End)
			if err != nil {
				t.Fatalf("%s %q: %v", kind, e.Text, err)
			}
			if len(edited) == 0 {
				t.Fatalf("%s %q: the edit %q covers no token", kind, e.Text, e.Edited())
			}
			l, _ := res.Layer(c.Middle())
			ratio := make([]float64, len(l.TokenRatio))
			for i, s := range l.TokenRatio {
				ratio[i] = s.Mean
			}
			if len(res.Baselines.Tokens) != len(ratio) {
				t.Fatalf("%d surprisal values for %d tokens", len(res.Baselines.Tokens), len(ratio))
			}
			drift = append(drift, eval.TokenCase{Scores: ratio, Edited: edited})
			surp = append(surp, eval.TokenCase{Scores: res.Baselines.Tokens, Edited: edited})
		}
		if len(drift) == 0 {
			fmt.Fprintf(&table, "%-14s %7d  (no sentence has something to edit)\n", kind, 0)
			continue
		}
		dm, err := eval.EvaluateTokens(drift)
		if err != nil {
			t.Fatal(err)
		}
		sm, err := eval.EvaluateTokens(surp)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range []eval.TokenMetrics{dm, sm} {
			if x.Prompts < 1 || x.Prompts > len(drift) || x.Edited < x.Prompts || x.Others < x.Prompts ||
				math.IsNaN(x.AUROC) || x.AUROC < 0 || x.AUROC > 1 || x.Top1 < 0 || x.Top1 > x.Top3 || x.Top3 > 1 {
				t.Errorf("%s: metrics out of range: %+v", kind, x)
			}
		}
		fmt.Fprintf(&table, "%-14s %7d  %5.3f %5.2f %5.2f        %5.3f %5.2f %5.2f\n", kind, dm.Prompts,
			dm.AUROC, dm.Top1, dm.Top3, sm.AUROC, sm.Top1, sm.Top3)
	}
	t.Log("\n" + table.String())
}
