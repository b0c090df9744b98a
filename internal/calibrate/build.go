package calibrate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/generate"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
)

// IdentityFor is the identity of analyzing with opt on m. aggregation ""
// means "angle"; reference describes the reference texts (SelfSource or
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
		aggregation = "angle"
	}
	return Identity{
		Model:            m.Manifest.Name,
		GGUFSHA256:       m.Manifest.Source.SHA256,
		ConverterVersion: m.Manifest.ConverterVersion,
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

// Options configure building a reference from a model.
type Options struct {
	Analyze     analyze.Options // the analysis to calibrate (Surprisal is forced on)
	Aggregation string          // its prompt-level aggregation's name ("" = "angle")
	Agg         Aggregator      // and the function (nil = LnRatio)
	Session     runtime.SessionOptions
	Progress    Progress // may be nil
}

// FromTexts analyzes texts with o.Analyze (and the logit baselines) on m
// and builds their reference; source describes them (FileSource). Texts
// the analyzer refuses (empty, too long) are counted as skipped; any other
// error stops.
func FromTexts(m *store.Model, texts []string, source string, o Options) (*Reference, error) {
	aopt := o.Analyze
	aopt.Surprisal = true
	an, err := analyze.New(m, aopt, o.Session)
	if err != nil {
		return nil, err
	}
	defer an.Close()
	b := NewBuilder(IdentityFor(m, an.Options(), o.Aggregation, source), o.Agg)
	for i, text := range texts {
		res, err := an.Analyze(text)
		switch {
		case errors.Is(err, analyze.ErrEmptyPrompt), errors.Is(err, analyze.ErrTooLong), errors.Is(err, analyze.ErrInvalidUTF8):
			b.Skip()
		case err != nil:
			return nil, fmt.Errorf("calibrate: reference text %d: %w", i+1, err)
		default:
			if err := b.Add(res); err != nil {
				return nil, err
			}
		}
		if o.Progress != nil {
			o.Progress("analyze", i+1, len(texts))
		}
	}
	return b.Reference()
}

// FromModel builds a reference from text the model generates itself: it
// samples g.Passages passages with g, then analyzes and collects them as
// FromTexts does. Passages that are empty or only whitespace (a stop token
// drawn first) are skipped.
func FromModel(m *store.Model, g generate.Options, o Options) (*Reference, []generate.Passage, error) {
	gen, err := generate.New(m, o.Session)
	if err != nil {
		return nil, nil, err
	}
	start := ""
	if g.Start == nil {
		_, start = gen.DefaultStart()
	} else {
		tok, err := m.Tokenizer()
		if err != nil {
			gen.Close()
			return nil, nil, err
		}
		start = tok.Decode(g.Start)
	}
	var prog func(done, total int)
	if o.Progress != nil {
		prog = func(done, total int) { o.Progress("generate", done, total) }
	}
	ps, err := gen.Generate(g, prog)
	gen.Close()
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
