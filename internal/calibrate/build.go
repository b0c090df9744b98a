package calibrate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/generate"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/tokenize"
)

// IdentityFor is the identity of analyzing with opt on m. aggregation ""
// means "flat" (the flattened-selection angle ratio, LnRatio); reference describes the reference texts (SelfSource or
// FileSource), or "" to accept any when looking a calibration up.
func IdentityFor(m *store.Model, opt analyze.Options, aggregation, reference string) Identity {
	site := opt.Site
	if site == "" {
		site = analyze.SiteResid
	}
	hs := slices.Clone(opt.HiddenStates)
	if site == analyze.SiteLogits && len(hs) == 0 {
		hs = []int{m.Config().Layers} // the analyzer's index for logits
	}
	if aggregation == "" {
		aggregation = "flat"
	}
	return Identity{
		Model:            m.Manifest.Name,
		GGUFSHA256:       m.Manifest.Source.SHA256,
		ConverterVersion: m.Manifest.ConverterVersion,
		GraphRevision:    store.RoundingRevision,
		Site:             string(site),
		HiddenStates:     hs,
		Samples:          opt.Samples,
		Sigma:            opt.Sigma,
		Noise:            opt.Noise.String(),
		Isolate:          opt.Isolate,
		IncludeFirst:     opt.IncludeFirst,
		Aggregation:      aggregation,
		Reference:        reference,
	}
}

// SelfSource describes a self-generated reference.
func SelfSource(g generate.Options, start string) string {
	tokens, temp, topP := g.Tokens, g.Temperature, g.TopP
	if tokens == 0 {
		tokens = generate.DefaultTokens
	}
	if temp == 0 {
		temp = 1
	}
	if topP == 0 {
		topP = 1
	}
	return fmt.Sprintf("self-generated %d passages of up to %d tokens from %q, seed %d, temperature %g, top-p %g",
		g.Passages, tokens, start, g.Seed, temp, topP)
}

// FileSource describes a reference read from a file: its base name and the
// SHA-256 of its content.
func FileSource(path string, content []byte) string {
	sum := sha256.Sum256(content)
	return fmt.Sprintf("file %s sha256 %s", filepath.Base(path), hex.EncodeToString(sum[:]))
}

// Progress reports a stage ("generate" or "analyze") and how far it is.
type Progress func(stage string, done, total int)

// DefaultPrefixTarget is how many prompt-level values the builders aim
// for in each length bucket that the reference texts themselves leave
// short, by analyzing prefixes of longer texts.
const DefaultPrefixTarget = 50

// MinPrefixTokens is the shortest prefix analyzed.
const MinPrefixTokens = 2

// Options configure building a reference from a model.
type Options struct {
	Analyze     analyze.Options // the analysis to calibrate (Surprisal is forced on)
	Aggregation string          // its prompt-level aggregation's name ("" = "flat")
	Agg         Aggregator      // and the function (nil = LnRatio)
	Session     runtime.SessionOptions
	Progress    Progress // may be nil
	// PrefixTarget: fill each shorter length bucket up to this many values
	// with token prefixes of the texts (PlanPrefixes); 0 =
	// DefaultPrefixTarget, negative = no prefixes.
	PrefixTarget int
	// Classes is the token class scheme per-token values are bucketed by
	// besides position (ClassFreq, ClassNorm, ClassNone; "" =
	// DefaultClassScheme).
	Classes string
}

// vocabNorms returns the norm of every embedding row of m as the model
// consumes it (store.Model.Embeddings: scaled like hidden state 0).
func vocabNorms(m *store.Model) ([]float64, error) {
	const chunk = 1024
	vocab := m.Config().Vocab
	norms := make([]float64, 0, vocab)
	ids := make([]int, 0, chunk)
	for lo := 0; lo < vocab; lo += chunk {
		ids = ids[:0]
		for id := lo; id < min(vocab, lo+chunk); id++ {
			ids = append(ids, id)
		}
		e, err := m.Embeddings(ids)
		if err != nil {
			return nil, fmt.Errorf("calibrate: embedding norms: %w", err)
		}
		dim := len(e) / len(ids)
		for k := range ids {
			var ss float64
			for _, v := range e[k*dim : (k+1)*dim] {
				ss += float64(v) * float64(v)
			}
			norms = append(norms, math.Sqrt(ss))
		}
	}
	return norms, nil
}

// textClasses prepares the token classes of a reference of texts (toks:
// their tokens) under scheme. For ClassFreq, a reference text's own
// tokens are classed by their count in the other texts (leave one out),
// the way a new text's tokens are classed against the whole reference;
// perText then returns those classes for an analyzed text, nil otherwise.
func textClasses(m *store.Model, scheme string, toks [][]tokenize.Token) (c *TokenClasses, perText func(i int, res *analyze.Result) []int, err error) {
	var ids []int
	for _, ts := range toks {
		for _, t := range ts {
			ids = append(ids, t.ID)
		}
	}
	none := func(int, *analyze.Result) []int { return nil }
	switch scheme {
	case ClassNone:
		return nil, none, nil
	case ClassNorm:
		norms, err := vocabNorms(m)
		if err != nil {
			return nil, nil, err
		}
		c, err := NormClasses(norms, ids)
		return c, none, err
	case ClassFreq:
		c, err := FreqClasses(m.Config().Vocab, ids)
		if err != nil {
			return nil, nil, err
		}
		count := map[int]int{}
		for _, id := range ids {
			count[id]++
		}
		perText = func(i int, res *analyze.Result) []int {
			own := map[int]int{}
			for _, t := range toks[i] {
				own[t.ID]++
			}
			out := make([]int, len(res.Tokens))
			for t, tk := range res.Tokens {
				if count[tk.ID]-own[tk.ID] < c.FreqThreshold {
					out[t] = 1
				}
			}
			return out
		}
		return c, perText, nil
	}
	return nil, nil, fmt.Errorf("calibrate: unknown token class scheme %q (valid: %s)", scheme, strings.Join(ClassSchemes, ", "))
}

// PlanPrefixes chooses prefixes of texts of the given lengths (in tokens)
// to analyze as prompts of their own, so that every length bucket below a
// text's own gets about target prompt-level values, counting the texts
// themselves. It works in rounds: in each, every text in turn gives at
// most one prefix, to the emptiest bucket below its own that is short of
// target and that it has not served yet; a prefix's length is drawn
// uniformly within the bucket (at least MinPrefixTokens) from a generator
// seeded with seed. The result lists, per text, its prefix lengths; at
// most target prefixes go to a bucket, so the cost is bounded by target
// times the number of buckets whatever the number of texts.
func PlanPrefixes(lengths []int, target int, seed uint64) [][]int {
	plan := make([][]int, len(lengths))
	if target <= 0 {
		return plan
	}
	nb := len(LengthStarts)
	cnt := make([]int, nb)
	for _, n := range lengths {
		if n > 0 {
			cnt[LengthBucket(n)]++
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	used := make([][]bool, len(lengths))
	for added := true; added; {
		added = false
		for i, n := range lengths {
			best := -1
			for b := 0; b < LengthBucket(n); b++ {
				lo, hi := max(LengthStarts[b], MinPrefixTokens), LengthStarts[b+1]-1
				if lo > hi || cnt[b] >= target || (used[i] != nil && used[i][b]) {
					continue
				}
				if best < 0 || cnt[b] < cnt[best] {
					best = b
				}
			}
			if best < 0 {
				continue
			}
			if used[i] == nil {
				used[i] = make([]bool, nb)
			}
			used[i][best] = true
			lo, hi := max(LengthStarts[best], MinPrefixTokens), LengthStarts[best+1]-1
			plan[i] = append(plan[i], lo+rng.IntN(hi-lo+1))
			cnt[best]++
			added = true
		}
	}
	return plan
}

// prefixText returns the text of the first n tokens of text (toks: its
// tokens), or when that cut falls inside a character or leaves only
// whitespace, of the nearest token count in the same length bucket that
// does not; false when none does.
func prefixText(text string, toks []tokenize.Token, n int) (string, bool) {
	b := LengthBucket(n)
	for d := 0; d < len(toks); d++ {
		for _, k := range []int{n - d, n + d} {
			if k < MinPrefixTokens || k >= len(toks) || LengthBucket(k) != b {
				continue
			}
			end := toks[k-1].End
			if end > 0 && end < len(text) && utf8.ValidString(text[:end]) && strings.TrimSpace(text[:end]) != "" {
				return text[:end], true
			}
		}
	}
	return "", false
}

// refused reports an error for a text the analyzer will not analyze.
func refused(err error) bool {
	return errors.Is(err, analyze.ErrEmptyPrompt) || errors.Is(err, analyze.ErrTooLong) || errors.Is(err, analyze.ErrInvalidUTF8)
}

// FromTexts analyzes texts with o.Analyze (and the logit baselines) on m
// and builds their reference; source describes them (FileSource). Prefixes
// of the texts (PlanPrefixes, o.PrefixTarget) are analyzed too, for the
// prompt-level length buckets the texts leave short. Texts the analyzer
// refuses (empty, too long) are counted as skipped, refused prefixes are
// left out; any other error stops.
func FromTexts(m *store.Model, texts []string, source string, o Options) (*Reference, error) {
	aopt := o.Analyze
	aopt.Surprisal = true
	tok, err := m.Tokenizer()
	if err != nil {
		return nil, err
	}
	toks := make([][]tokenize.Token, len(texts))
	lengths := make([]int, len(texts))
	for i, text := range texts {
		if t, err := tok.Encode(text); err == nil {
			toks[i], lengths[i] = t, len(t)
		}
	}
	scheme := o.Classes
	if scheme == "" {
		scheme = DefaultClassScheme
	}
	classes, perText, err := textClasses(m, scheme, toks)
	if err != nil {
		return nil, err
	}
	target := o.PrefixTarget
	if target == 0 {
		target = DefaultPrefixTarget
	}
	plan := PlanPrefixes(lengths, target, 1)
	total := len(texts)
	for _, p := range plan {
		total += len(p)
	}
	an, err := analyze.New(m, aopt, o.Session)
	if err != nil {
		return nil, err
	}
	defer an.Close()
	b := NewBuilder(IdentityFor(m, an.Options(), o.Aggregation, source), o.Agg)
	b.SetClasses(classes)
	done := 0
	step := func() {
		done++
		if o.Progress != nil {
			o.Progress("analyze", done, total)
		}
	}
	for i, text := range texts {
		res, err := an.Analyze(text)
		switch {
		case refused(err):
			b.Skip()
		case err != nil:
			return nil, fmt.Errorf("calibrate: reference text %d: %w", i+1, err)
		default:
			if err := b.AddClassed(res, perText(i, res)); err != nil {
				return nil, err
			}
		}
		step()
		for _, n := range plan[i] {
			if p, ok := prefixText(text, toks[i], n); ok {
				res, err := an.Analyze(p)
				switch {
				case refused(err):
				case err != nil:
					return nil, fmt.Errorf("calibrate: a %d-token prefix of reference text %d: %w", n, i+1, err)
				default:
					if err := b.AddPrefix(res); err != nil {
						return nil, err
					}
				}
			}
			step()
		}
	}
	return b.Reference()
}

// passageFile is the cache of one self-generated reference's passages.
type passageFile struct {
	Model            string `json:"model"` // GGUF sha256
	ConverterVersion int    `json:"converter_version"`
	// GraphRevision is the store.RoundingRevision of the graphs that
	// sampled the passages: another rounding may sample other tokens.
	GraphRevision int                `json:"graph_revision"`
	Source        string             `json:"source"` // SelfSource
	Passages      []generate.Passage `json:"passages"`
}

// Passages returns the passages g samples from m and the text they
// continue. They are cached in the model's store directory
// (passages-<hash>.json, keyed by the model, the graphs' rounding revision
// and SelfSource): a later run
// with the same options reads them instead of generating again, so that
// calibrations of other analysis options share one reference text.
// progress (may be nil) reports generation.
func Passages(m *store.Model, g generate.Options, so runtime.SessionOptions, progress func(done, total int)) ([]generate.Passage, string, error) {
	gen, err := generate.New(m, so)
	if err != nil {
		return nil, "", err
	}
	defer gen.Close()
	start := ""
	if g.Start == nil {
		_, start = gen.DefaultStart()
	} else {
		tok, err := m.Tokenizer()
		if err != nil {
			return nil, "", err
		}
		start = tok.Decode(g.Start)
	}
	want := passageFile{Model: m.Manifest.Source.SHA256, ConverterVersion: m.Manifest.ConverterVersion, GraphRevision: store.RoundingRevision, Source: SelfSource(g, start)}
	key, _ := json.Marshal(want)
	sum := sha256.Sum256(key)
	path := filepath.Join(m.Dir, "passages-"+hex.EncodeToString(sum[:6])+".json")
	if data, err := os.ReadFile(path); err == nil {
		var have passageFile
		if json.Unmarshal(data, &have) == nil && have.Model == want.Model && have.ConverterVersion == want.ConverterVersion &&
			have.GraphRevision == want.GraphRevision && have.Source == want.Source && len(have.Passages) == g.Passages {
			return have.Passages, start, nil
		}
	}
	ps, err := gen.Generate(g, progress)
	if err != nil {
		return nil, "", err
	}
	want.Passages = ps
	if data, err := json.Marshal(want); err == nil {
		writeAtomic(path, data) // a cache: a failed write only costs the next run a generation
	}
	return ps, start, nil
}

// writeAtomic writes data to path through a temporary file in its
// directory, so that a reader never sees half a file.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	merr := f.Chmod(0o644)
	cerr := f.Close()
	if err := errors.Join(werr, merr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// FromModel builds a reference from text the model generates itself: it
// samples g.Passages passages with g (or reads them from the model's
// store directory, see Passages), then analyzes and collects them as
// FromTexts does. Passages that are empty or only whitespace (a stop token
// drawn first) are skipped.
func FromModel(m *store.Model, g generate.Options, o Options) (*Reference, []generate.Passage, error) {
	var prog func(done, total int)
	if o.Progress != nil {
		prog = func(done, total int) { o.Progress("generate", done, total) }
	}
	ps, start, err := Passages(m, g, o.Session, prog)
	if err != nil {
		return nil, nil, err
	}
	texts := make([]string, 0, len(ps))
	for _, p := range ps {
		if strings.TrimSpace(p.Text) != "" {
			texts = append(texts, p.Text)
		}
	}
	ref, err := FromTexts(m, texts, SelfSource(g, start), o)
	if err != nil {
		return nil, ps, err
	}
	ref.Skipped += len(ps) - len(texts)
	return ref, ps, nil
}
