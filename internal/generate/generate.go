// Package generate samples text from a model itself: batched, seeded
// ancestral sampling through the model's graphs, for calibration
// references that need no dataset.
//
// There is no KV cache: every step runs the whole prefix of each passage
// in the batch. All passages of a batch start from the same start tokens
// and grow by one token per step, so they share one length and need no
// padding; a passage that stops leaves the batch. Each step runs the body
// up to the final norm (norm.n, [B, T, dim]) and projects only the last
// position of each row onto the vocabulary with the head-only graph
// ([B, 1, vocab]), so logits memory is B × vocab, not B × T × vocab.
package generate

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/tokenize"
)

// Options configure one generation run.
type Options struct {
	Passages    int     // number of passages (at least 1)
	Tokens      int     // new tokens per passage at most (0 = DefaultTokens)
	Temperature float64 // softmax temperature (0 = 1; must not be negative)
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches TopP (nucleus sampling); 0 or 1 = off.
	TopP float64
	Seed uint64 // passage i draws from a stream seeded by (Seed, i)
	// Start are the token IDs every passage starts from (not part of its
	// text). Nil = the generator's DefaultStart.
	Start []int
	// BatchRows caps the passages per forward pass (0 = 64). Results do not
	// depend on it.
	BatchRows int
	// BatchMiB bounds the memory of one forward pass (0 = 512 MiB).
	BatchMiB int
}

// DefaultTokens is the default passage length in tokens.
const DefaultTokens = 24

// Passage is one sampled passage.
type Passage struct {
	Index int    // position in the run, 0-based
	IDs   []int  // sampled token IDs, without the start tokens or the stop token
	Text  string // the IDs decoded, valid UTF-8
	// Stopped says the passage ended on a stop token (EOS) before its
	// token budget.
	Stopped bool
	// Repaired says the decoded bytes were not valid UTF-8 (a multi-byte
	// character cut at the end, or byte tokens that form none) and were
	// repaired: a cut tail dropped, other bad bytes replaced with U+FFFD.
	Repaired bool
}

// Generator samples passages from one model, keeping its sessions loaded.
type Generator struct {
	model      *store.Model
	cfg        arch.Spec
	tok        *tokenize.Tokenizer
	body, head *runtime.Session
	start      []int
	startName  string
}

// New opens the sessions generation needs: the body up to the final norm
// and the output head. runtime.Init must have succeeded.
func New(m *store.Model, so runtime.SessionOptions) (*Generator, error) {
	cfg := m.Config()
	tok, err := m.Tokenizer()
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() != cfg.Vocab {
		return nil, fmt.Errorf("generate: the tokenizer has %d tokens but the model's head has %d; re-convert the model", tok.VocabSize(), cfg.Vocab)
	}
	g := &Generator{model: m, cfg: cfg, tok: tok}
	g.start, g.startName = defaultStart(tok)
	final := arch.Point{Site: arch.SiteNorm, Index: cfg.Layers}
	g.body, err = m.OpenSession(arch.GraphOptions{Outputs: []arch.Point{final}}, arch.InputEmbeds,
		[]runtime.Output{{Name: final.Name(), Width: cfg.Dim}}, so)
	if err != nil {
		return nil, err
	}
	g.head, err = m.OpenSession(arch.GraphOptions{Head: true}, arch.HeadInput,
		[]runtime.Output{{Name: arch.LogitsName, Width: cfg.Vocab}}, so)
	if err != nil {
		g.body.Close()
		return nil, err
	}
	return g, nil
}

// defaultStart picks what a passage starts from: the document separator
// "<|endoftext|>" when the vocabulary has it as a special token (GPT-2
// style vocabularies put it between pretraining documents, so what follows
// is the model's idea of a document's beginning), else BOS. Instruct
// vocabularies often name "<|im_start|>" as BOS, which would make every
// passage a chat turn; the separator avoids that. With neither, there is
// no default and Options.Start must be given.
func defaultStart(tok *tokenize.Tokenizer) ([]int, string) {
	if id, ok := tok.ID("<|endoftext|>"); ok && tok.IsSpecial(id) {
		return []int{id}, "<|endoftext|>"
	}
	if b := tok.BOS(); b >= 0 {
		return []int{b}, tok.Decode([]int{b})
	}
	return nil, ""
}

// DefaultStart returns the start tokens used when Options.Start is nil,
// and their text ("" and nil when the vocabulary offers none).
func (g *Generator) DefaultStart() ([]int, string) { return slices.Clone(g.start), g.startName }

// Close releases the sessions.
func (g *Generator) Close() error {
	return errors.Join(g.body.Close(), g.head.Close())
}

// Passes returns the number of forward passes run so far (body and head).
func (g *Generator) Passes() int { return g.body.Runs() + g.head.Runs() }

// check validates opt and fills its defaults.
func (g *Generator) check(opt Options) (Options, error) {
	if opt.Passages < 1 {
		return opt, fmt.Errorf("generate: passages must be at least 1, got %d", opt.Passages)
	}
	if opt.Tokens == 0 {
		opt.Tokens = DefaultTokens
	}
	if opt.Tokens < 1 {
		return opt, fmt.Errorf("generate: tokens per passage must be at least 1, got %d", opt.Tokens)
	}
	if opt.Temperature == 0 {
		opt.Temperature = 1
	}
	if !(opt.Temperature > 0) || math.IsInf(opt.Temperature, 0) {
		return opt, fmt.Errorf("generate: temperature must be a positive number, got %v", opt.Temperature)
	}
	if opt.TopP == 0 {
		opt.TopP = 1
	}
	if !(opt.TopP > 0 && opt.TopP <= 1) {
		return opt, fmt.Errorf("generate: top-p must be in (0, 1], got %v", opt.TopP)
	}
	if opt.Start == nil {
		opt.Start = slices.Clone(g.start)
	}
	if len(opt.Start) == 0 {
		return opt, errors.New("generate: the vocabulary has neither <|endoftext|> nor a BOS token to start from; give start tokens (Options.Start)")
	}
	for _, id := range opt.Start {
		if id < 0 || id >= g.cfg.Vocab {
			return opt, fmt.Errorf("generate: start token %d is outside the vocabulary (0..%d)", id, g.cfg.Vocab-1)
		}
	}
	if len(opt.Start)+opt.Tokens > g.cfg.ContextLength {
		return opt, fmt.Errorf("generate: %d start + %d new tokens exceed the model's context of %d", len(opt.Start), opt.Tokens, g.cfg.ContextLength)
	}
	if opt.BatchRows <= 0 {
		opt.BatchRows = 64
	}
	if opt.BatchMiB <= 0 {
		opt.BatchMiB = 512
	}
	opt.BatchMiB = min(opt.BatchMiB, 1<<20)
	return opt, nil
}

// rows is how many passages of up to T tokens fit one forward pass within
// the memory budget: residual stream, attention scores and MLP per row in
// the body, three vocabulary-wide buffers per row in the head.
func (g *Generator) rows(opt Options, T int) int {
	c := g.cfg
	perRow := 4 * (T*(5*c.Dim+3*c.FFN) + 2*c.Heads*T*T + 3*c.Vocab)
	n := (opt.BatchMiB << 20) / max(perRow, 1)
	return max(1, min(n, opt.BatchRows))
}

// Generate samples opt.Passages passages. A passage ends after opt.Tokens
// tokens or at a stop token: EOS, or a start token that is special (a
// document separator). Other special tokens (control, user-defined,
// unused) are never sampled. The result depends only on the model, the
// start tokens, Tokens, Temperature, TopP and Seed — not on batching.
// progress, if not nil, is called after each batch with the passages done.
func (g *Generator) Generate(opt Options, progress func(done, total int)) ([]Passage, error) {
	opt, err := g.check(opt)
	if err != nil {
		return nil, err
	}
	V := g.cfg.Vocab
	stop := map[int]bool{}
	if e := g.tok.EOS(); e >= 0 {
		stop[e] = true
	}
	for _, id := range opt.Start {
		if g.tok.IsSpecial(id) {
			stop[id] = true
		}
	}
	allowed := make([]bool, V)
	for id := range allowed {
		allowed[id] = !g.tok.IsSpecial(id) || stop[id]
	}
	startEmb, err := g.model.Embeddings(opt.Start)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	out := make([]Passage, opt.Passages)
	s := newSampler(V, opt.Temperature, opt.TopP, allowed)
	B := g.rows(opt, len(opt.Start)+opt.Tokens)
	for lo := 0; lo < opt.Passages; lo += B {
		hi := min(lo+B, opt.Passages)
		if err := g.batch(out[lo:hi], lo, opt, startEmb, stop, s); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(hi, opt.Passages)
		}
	}
	return out, nil
}

// row is one passage being generated.
type row struct {
	p    *Passage
	emb  []float32 // embeddings of start + sampled tokens
	rng  *rand.Rand
	done bool
}

// batch generates passages first..first+len(ps)-1 together.
func (g *Generator) batch(ps []Passage, first int, opt Options, startEmb []float32, stop map[int]bool, s *sampler) error {
	d := g.cfg.Dim
	rows := make([]*row, len(ps))
	for i := range ps {
		ps[i] = Passage{Index: first + i}
		rows[i] = &row{
			p:   &ps[i],
			emb: append(make([]float32, 0, len(startEmb)+opt.Tokens*d), startEmb...),
			rng: rand.New(rand.NewPCG(opt.Seed, uint64(first+i))),
		}
	}
	active := rows
	for step := 0; step < opt.Tokens && len(active) > 0; step++ {
		T := len(opt.Start) + step
		in := make([]float32, 0, len(active)*T*d)
		for _, r := range active {
			in = append(in, r.emb...)
		}
		outs, err := g.body.Run(in, len(active), T)
		if err != nil {
			return fmt.Errorf("generate: step %d: %w", step+1, err)
		}
		last := make([]float32, len(active)*d)
		for i := range active {
			copy(last[i*d:(i+1)*d], outs[0][(i*T+T-1)*d:(i*T+T)*d])
		}
		lg, err := g.head.Run(last, len(active), 1)
		if err != nil {
			return fmt.Errorf("generate: step %d: %w", step+1, err)
		}
		V := g.cfg.Vocab
		next := make([]int, len(active))
		for i, r := range active {
			if next[i], err = s.sample(lg[0][i*V:(i+1)*V], r.rng.Float64()); err != nil {
				return fmt.Errorf("%w (step %d, passage %d)", err, step+1, r.p.Index)
			}
		}
		kept := active[:0]
		for i, r := range active {
			id := next[i]
			if stop[id] {
				r.p.Stopped = true
				continue
			}
			r.p.IDs = append(r.p.IDs, id)
			e, err := g.model.Embeddings([]int{id})
			if err != nil {
				return fmt.Errorf("generate: %w", err)
			}
			r.emb = append(r.emb, e...)
			kept = append(kept, r)
		}
		active = kept
	}
	for _, r := range rows {
		r.p.Text, r.p.Repaired = validText(g.tok.Decode(r.p.IDs))
	}
	return nil
}

// validText returns s as valid UTF-8: an incomplete character at the end
// is dropped, other invalid bytes become U+FFFD. repaired reports a change.
func validText(s string) (string, bool) {
	if utf8.ValidString(s) {
		return s, false
	}
	// Drop a cut multi-byte character at the end (at most 3 bytes).
	for n := 1; n <= 3 && n <= len(s); n++ {
		tail := s[len(s)-n:]
		if utf8.RuneStart(tail[0]) {
			if !utf8.FullRuneInString(tail) {
				s = s[:len(s)-n]
			}
			break
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD"), true
}
