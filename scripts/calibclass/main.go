// Command calibclass measures whether bucketing per-token calibration
// values by a token class (embedding-norm tercile, or frequency in the
// model's own text) makes calibrated p-values more uniform on held-out
// self-generated text and improves token-level localization. A
// measurement tool behind the README's calibration section, not part of
// lmood.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/calibrate"
	"github.com/lmood/lmood/internal/eval"
	"github.com/lmood/lmood/internal/generate"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
)

type tok struct {
	Pass, Pos, ID int
	Drift         []float64 // ln ratio per layer
	Surp          float64
}

type spanCase struct {
	Kind   string
	Toks   []tok
	Edited []int
}

type data struct {
	Ref   [][]tok
	Spans []spanCase
	Norm  []float64
}

func main() {
	model := flag.String("model", "smollm2-135m", "store name")
	passages := flag.Int("passages", 120, "self-generated passages (as lmood calibrate --passages)")
	tokens := flag.Int("tokens", 24, "tokens per passage (as lmood calibrate --tokens)")
	sentences := flag.Int("sentences", 12, "sentences of plain.txt and of numbers.txt for span edits")
	cache := flag.String("cache", "/tmp/calibclass.json", "cache of the analyses")
	flag.Parse()
	layers := []int{10, 15}
	var d data
	if b, err := os.ReadFile(*cache); err == nil {
		must(json.Unmarshal(b, &d))
	} else {
		d = collect(*model, layers, *passages, *tokens, *sentences)
		b, _ := json.Marshal(d)
		must(os.WriteFile(*cache, b, 0o644))
	}
	report(d, layers)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func collect(model string, layers []int, passages, tokens, sentences int) data {
	must(runtime.Init(""))
	m, err := store.Default().Open(model)
	must(err)
	defer m.Close()
	var d data
	// every vocabulary row's norm, as the model consumes it
	V := m.Config().Vocab
	for lo := 0; lo < V; lo += 1024 {
		ids := make([]int, 0, 1024)
		for i := lo; i < min(V, lo+1024); i++ {
			ids = append(ids, i)
		}
		e, err := m.Embeddings(ids)
		must(err)
		dim := len(e) / len(ids)
		for k := range ids {
			var s float64
			for _, v := range e[k*dim : (k+1)*dim] {
				s += float64(v) * float64(v)
			}
			d.Norm = append(d.Norm, math.Sqrt(s))
		}
	}
	// the passages `lmood calibrate --passages N --tokens T` generates (cached)
	ps, _, err := calibrate.Passages(m, generate.Options{Passages: passages, Tokens: tokens, Seed: 1}, runtime.SessionOptions{}, nil)
	must(err)
	an, err := analyze.New(m, analyze.Options{HiddenStates: layers, Samples: 8, Sigma: 0.01, Seed: 1, Surprisal: true}, runtime.SessionOptions{})
	must(err)
	defer an.Close()
	toks := func(res *analyze.Result, pass int) []tok {
		var out []tok
		for t := range res.Tokens {
			x := tok{Pass: pass, Pos: t, ID: res.Tokens[t].ID, Surp: res.Baselines.Tokens[t]}
			for i := range layers {
				s := res.Layers[i].TokenRatio[t]
				v := math.NaN()
				if s.Defined && s.Mean > 0 {
					v = math.Log(s.Mean)
				}
				x.Drift = append(x.Drift, v)
			}
			out = append(out, x)
		}
		return out
	}
	for i, p := range ps {
		res, err := an.Analyze(p.Text)
		if err != nil {
			continue
		}
		d.Ref = append(d.Ref, toks(res, i))
		fmt.Fprintf(os.Stderr, "\rref %d/%d", i+1, len(ps))
	}
	texts, err := eval.ReadTexts(filepath.Join("prompts", "eval", "plain.txt"))
	must(err)
	texts = texts[:sentences]
	nums, err := eval.ReadTexts(filepath.Join("prompts", "eval", "numbers.txt"))
	must(err)
	texts = append(texts, nums[:min(sentences, len(nums))]...)
	for _, kind := range eval.SpanKinds() {
		for _, text := range texts {
			e, ok, err := eval.CorruptSpan(kind, text, eval.ItemSeed(1, text))
			if err != nil || !ok {
				continue
			}
			res, err := an.Analyze(e.Text)
			if err != nil {
				continue
			}
			ts := make([]string, len(res.Tokens))
			for i, tk := range res.Tokens {
				ts[i] = tk.Text
			}
			ed, err := eval.TokensInSpan(e.Text, ts, e.Start, e.End)
			if err != nil || len(ed) == 0 {
				continue
			}
			d.Spans = append(d.Spans, spanCase{Kind: kind, Toks: toks(res, -1), Edited: ed})
		}
		fmt.Fprintf(os.Stderr, "\rspans %s done\n", kind)
	}
	return d
}

// scheme assigns a class to a token; classes index 0..n-1.
type scheme struct {
	name  string
	n     int
	class func(t tok) int
}

// ref is a per-(position bucket, class) reference of one score.
type ref struct {
	pos   []calibrate.Dist
	cells [][]calibrate.Dist
}

func build(toks []tok, val func(tok) float64, s scheme) ref {
	nb := len(calibrate.BucketStarts)
	pv := make([][]float64, nb)
	cv := make([][][]float64, nb)
	for b := range cv {
		cv[b] = make([][]float64, s.n)
	}
	for _, t := range toks {
		if t.Pos == 0 {
			continue
		}
		b := calibrate.Bucket(t.Pos)
		v := val(t)
		pv[b] = append(pv[b], v)
		cv[b][s.class(t)] = append(cv[b][s.class(t)], v)
	}
	var r ref
	for b := range nb {
		r.pos = append(r.pos, calibrate.NewDist(pv[b]))
		var cs []calibrate.Dist
		for c := range s.n {
			cs = append(cs, calibrate.NewDist(cv[b][c]))
		}
		r.cells = append(r.cells, cs)
	}
	return r
}

// p is the upper-tail p-value of t's value (orientation: higher unusual).
func (r ref) p(t tok, v float64, s scheme) float64 {
	b := calibrate.Bucket(t.Pos)
	if d := &r.cells[b][s.class(t)]; d.N >= calibrate.MinBucket {
		return d.UpperP(v)
	}
	return r.pos[b].UpperP(v)
}

func ks(ps []float64) float64 {
	x := slices.Clone(ps)
	sort.Float64s(x)
	n := float64(len(x))
	var D float64
	for i, p := range x {
		D = math.Max(D, math.Max(math.Abs(float64(i+1)/n-p), math.Abs(p-float64(i)/n)))
	}
	return D
}

func report(d data, layers []int) {
	nBuild := len(d.Ref) * 3 / 4
	build1, held := d.Ref[:nBuild], d.Ref[nBuild:]
	var bt, ht []tok
	for _, p := range build1 {
		bt = append(bt, p[1:]...)
	}
	for _, p := range held {
		ht = append(ht, p[1:]...)
	}
	// norm terciles over the build tokens' occurrences
	var norms []float64
	for _, t := range bt {
		norms = append(norms, d.Norm[t.ID])
	}
	sort.Float64s(norms)
	e1, e2 := norms[len(norms)/3], norms[2*len(norms)/3]
	normClass := func(t tok) int {
		v := d.Norm[t.ID]
		switch {
		case v < e1:
			return 0
		case v < e2:
			return 1
		}
		return 2
	}
	// frequency: occurrences in the build passages other than the token's own
	count := map[int]int{}
	own := map[[2]int]int{}
	for _, t := range bt {
		count[t.ID]++
		own[[2]int{t.Pass, t.ID}]++
	}
	freqOf := func(t tok) int { return count[t.ID] - own[[2]int{t.Pass, t.ID}] }
	// threshold: the occurrence-weighted median of counts
	var fs []int
	for _, t := range bt {
		fs = append(fs, freqOf(t))
	}
	slices.Sort(fs)
	fmed := fs[len(fs)/2]
	freqClass := func(t tok) int {
		if freqOf(t) >= fmed {
			return 0 // common
		}
		return 1 // rare
	}
	staticClass := func(t tok) int {
		if count[t.ID] >= fmed {
			return 0
		}
		return 1
	}
	// the rule lmood calibrate ships (calibrate.FreqClasses): threshold
	// max(2, median count over the occurrences), a reference token classed
	// by its count in the other texts, a new token by its count
	var sc []int
	for _, t := range bt {
		sc = append(sc, count[t.ID])
	}
	slices.Sort(sc)
	thr := max(2, sc[len(sc)/2])
	shipClass := func(t tok) int {
		n := count[t.ID]
		if t.Pass >= 0 && t.Pass < nBuild {
			n -= own[[2]int{t.Pass, t.ID}]
		}
		if n >= thr {
			return 0
		}
		return 1
	}
	fmt.Printf("shipped freq rule: frequent from %d occurrences\n", thr)
	fmt.Printf("reference: %d build passages (%d tokens), %d held-out (%d tokens); norm tercile edges %.3f %.3f\n"+
		"seen-elsewhere: class 0 = seen >= %d times in other build passages; seen-static: class 0 = seen >= that often in the build passages; "+
		"freq-shipped: calibrate.FreqClasses' rule\n",
		len(build1), len(bt), len(held), len(ht), e1, e2, fmed)
	schemes := []scheme{
		{"position", 1, func(tok) int { return 0 }},
		{"position x norm", 3, normClass},
		{"position x seen-elsewhere", 2, freqClass},
		{"position x seen-static", 2, staticClass},
		{"position x freq-shipped", 2, shipClass},
	}
	partitions := []scheme{schemes[1], schemes[2]}
	vals := map[string]func(tok) float64{"surprisal": func(t tok) float64 { return t.Surp }}
	names := []string{}
	for i, h := range layers {
		i := i
		n := fmt.Sprintf("drift L%d", h)
		vals[n] = func(t tok) float64 { return t.Drift[i] } // expand: higher ratio = unusual
		names = append(names, n)
	}
	names = append(names, "surprisal")
	fmt.Println("\nKS distance of held-out per-token p-values from uniform, within each class (lower = better calibrated)")
	for _, name := range names {
		for _, s := range schemes {
			r := build(bt, vals[name], s)
			line := fmt.Sprintf("%-10s %-27s", name, s.name)
			var all []float64
			for _, part := range partitions {
				cls := make([][]float64, part.n)
				for _, t := range ht {
					p := r.p(t, vals[name](t), s)
					cls[part.class(t)] = append(cls[part.class(t)], p)
				}
				for c := range part.n {
					line += fmt.Sprintf(" %s%d %.3f (n=%d)", part.name[len("position x "):], c, ks(cls[c]), len(cls[c]))
				}
			}
			for _, t := range ht {
				all = append(all, r.p(t, vals[name](t), s))
			}
			fmt.Printf("%s  all %.3f\n", line, ks(all))
		}
	}
	// token-level localization with the calibrated p-values (reference: all passages)
	var at []tok
	for _, p := range d.Ref {
		at = append(at, p[1:]...)
	}
	fmt.Println("\ntoken-level on span edits: AUROC / top-1 (p-values from the whole self-generated reference)")
	kinds := eval.SpanKinds()
	for _, s := range schemes {
		refs := map[string]ref{}
		for _, name := range names {
			refs[name] = build(at, vals[name], s)
		}
		// freq class of a case token: count over all passages (own = none)
		for li, h := range layers {
			for _, method := range []string{"p-drift", "p-surprisal", "fisher", "minp"} {
				if method == "p-surprisal" && li > 0 {
					continue
				}
				line := fmt.Sprintf("%-27s %-12s", s.name, method)
				if method != "p-surprisal" {
					line += fmt.Sprintf(" L%-3d", h)
				} else {
					line += "     "
				}
				for _, kind := range kinds {
					var cases []eval.TokenCase
					for _, c := range d.Spans {
						if c.Kind != kind {
							continue
						}
						sc := make([]float64, len(c.Toks))
						for t := 1; t < len(c.Toks); t++ {
							tk := c.Toks[t]
							dn := names[li]
							pd := refs[dn].p(tk, vals[dn](tk), s)
							pss := refs["surprisal"].p(tk, tk.Surp, s)
							switch method {
							case "p-drift":
								sc[t] = -math.Log(pd)
							case "p-surprisal":
								sc[t] = -math.Log(pss)
							case "fisher":
								sc[t] = eval.FisherScore(pd, pss)
							case "minp":
								sc[t] = eval.TippettScore(pd, pss)
							}
						}
						cases = append(cases, eval.TokenCase{Scores: sc, Edited: c.Edited})
					}
					m, err := eval.EvaluateTokens(cases)
					if err != nil {
						line += " " + kind + " err"
						continue
					}
					line += fmt.Sprintf(" %s %.3f/%.2f", kind, m.AUROC, m.Top1)
				}
				fmt.Println(line)
			}
		}
	}
}
