package calibrate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lmood/lmood/internal/analyze"
)

// FormatVersion is the version of the calibration file format; files of
// another version are refused. Version 3 added token classes
// (Reference.Classes, Layer.TokensByClass).
const FormatVersion = 3

// MinPrompts is the smallest reference a calibration is built from.
const MinPrompts = 20

// MinBucket is the fewest values a bucket needs to be used. A token whose
// (position bucket, token class) cell has fewer is compared with every
// token of its position bucket (Value.Against says so); a position whose
// bucket has fewer falls back to the nearest earlier bucket that has
// enough, with a warning.
const MinBucket = 20

// BucketStarts are the first positions of the per-token position buckets:
// 0 (the attention sink), 1, 2–3, 4–7, 8–15, 16–31, 32 and on.
var BucketStarts = []int{0, 1, 2, 4, 8, 16, 32}

// LengthStarts are the first prompt lengths (in tokens, as the analyzer
// counts them) of the prompt-level length buckets: up to 4 tokens, 5–8,
// 9–16, 17–32, 33 and more. A prompt-level value depends on the prompt's
// length (a longer prompt averages over more tokens), so a prompt is
// compared with reference texts of about its length.
var LengthStarts = []int{1, 5, 9, 17, 33}

// LengthBucket returns the length bucket of a prompt of n tokens.
func LengthBucket(n int) int {
	b := 0
	for i, s := range LengthStarts {
		if n >= s {
			b = i
		}
	}
	return b
}

// LengthLabel names length bucket b: "1–4 tokens", "33+ tokens".
func LengthLabel(b int) string {
	if b < 0 || b >= len(LengthStarts) {
		return fmt.Sprintf("length bucket %d", b)
	}
	if b == len(LengthStarts)-1 {
		return fmt.Sprintf("%d+ tokens", LengthStarts[b])
	}
	return fmt.Sprintf("%d–%d tokens", LengthStarts[b], LengthStarts[b+1]-1)
}

// Bucket returns the position bucket of token position pos (0-based).
func Bucket(pos int) int {
	b := 0
	for i, s := range BucketStarts {
		if pos >= s {
			b = i
		}
	}
	return b
}

// Sentinel errors.
var (
	// ErrTooSmall: the reference has fewer than MinPrompts texts.
	ErrTooSmall = errors.New("calibration reference too small")
	// ErrMismatch: a calibration file describes another analysis.
	ErrMismatch = errors.New("calibration was built for another analysis")
	// ErrNotFound: no calibration file for the analysis.
	ErrNotFound = errors.New("no calibration for this analysis")
)

// Identity says which analysis a calibration describes. A calibration is
// applied only to an analysis with the same identity (and hidden states
// among the calibrated ones). The noise seed is not part of it: it changes
// which nudges are drawn, not their distribution.
type Identity struct {
	Model            string  `json:"model"`             // store name
	GGUFSHA256       string  `json:"gguf_sha256"`       // the converted GGUF's digest
	ConverterVersion int     `json:"converter_version"` // store.ConverterVersion at conversion
	GraphRevision    int     `json:"graph_revision"`    // store.RoundingRevision of the graphs measured
	Site             string  `json:"site"`              // measurement site
	HiddenStates     []int   `json:"hidden_states"`     // indices at Site
	Samples          int     `json:"samples"`           // K
	Sigma            float64 `json:"sigma"`
	Noise            string  `json:"noise"` // per-token or whole
	Isolate          bool    `json:"isolate"`
	IncludeFirst     bool    `json:"include_first"`
	// Aggregation names how per-token drift becomes the prompt-level value
	// (default "angle": the flattened-selection ratio, Layer.Ratio).
	Aggregation string `json:"aggregation"`
	// Reference describes the texts: "self-generated …" or "file NAME
	// sha256 HEX".
	Reference string `json:"reference"`
}

// firstRecordedRevision is the first graph revision calibrations record;
// files without one were measured on older graphs.
const firstRecordedRevision = 6

// mismatches lists how a calibration built for id differs from the
// analysis want; empty when it applies.
func (id Identity) mismatches(want Identity) []string {
	var out []string
	diff := func(field string, have, w any) {
		if fmt.Sprint(have) != fmt.Sprint(w) {
			out = append(out, fmt.Sprintf("%s: calibrated %v, asked %v", field, have, w))
		}
	}
	diff("model", id.Model, want.Model)
	diff("GGUF sha256", id.GGUFSHA256, want.GGUFSHA256)
	diff("converter version", id.ConverterVersion, want.ConverterVersion)
	if id.GraphRevision == 0 && want.GraphRevision != 0 {
		// A file written before the revision was recorded.
		out = append(out, fmt.Sprintf("graph revision: calibrated on graphs older than revision %d, asked %d", firstRecordedRevision, want.GraphRevision))
	} else {
		diff("graph revision", id.GraphRevision, want.GraphRevision)
	}
	diff("site", id.Site, want.Site)
	diff("samples", id.Samples, want.Samples)
	if id.Sigma != want.Sigma {
		diff("sigma", id.Sigma, want.Sigma)
	}
	diff("noise", id.Noise, want.Noise)
	diff("isolate", id.Isolate, want.Isolate)
	diff("include-first", id.IncludeFirst, want.IncludeFirst)
	diff("aggregation", id.Aggregation, want.Aggregation)
	if want.Reference != "" {
		diff("reference", id.Reference, want.Reference)
	}
	var missing []int
	for _, h := range want.HiddenStates {
		if !slices.Contains(id.HiddenStates, h) {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		out = append(out, fmt.Sprintf("hidden states: calibrated %v, asked %v (%v not calibrated)", id.HiddenStates, want.HiddenStates, missing))
	}
	return out
}

// Check returns an error wrapping ErrMismatch that names every field in
// which a calibration built for id differs from the analysis want. An
// empty want.Reference accepts any reference texts; every hidden state of
// want must be calibrated.
func (id Identity) Check(want Identity) error {
	if m := id.mismatches(want); len(m) > 0 {
		return fmt.Errorf("%w: %s", ErrMismatch, strings.Join(m, "; "))
	}
	return nil
}

// key is a short hash of the identity, for file names.
func (id Identity) key() string {
	id.HiddenStates = slices.Clone(id.HiddenStates)
	slices.Sort(id.HiddenStates)
	data, _ := json.Marshal(id)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:6])
}

// FileName is the calibration file name for id:
// calibration-<site>-<hash of the identity>.json.
func (id Identity) FileName() string {
	return "calibration-" + id.Site + "-" + id.key() + ".json"
}

// Layer is the reference at one measurement point.
type Layer struct {
	Index int `json:"index"`
	// Prompt is the prompt-level ln-ratio of every reference text and
	// prefix, whatever its length (the fallback when a length bucket is
	// thin).
	Prompt Dist `json:"prompt"`
	// PromptByLength is the prompt-level ln-ratio by prompt length, one
	// distribution per length bucket (LengthStarts).
	PromptByLength []Dist `json:"prompt_by_length"`
	// Tokens is the per-token ln-ratio, one distribution per position
	// bucket (BucketStarts).
	Tokens []Dist `json:"tokens"`
	// TokensByClass[k][b] is the per-token ln-ratio of the tokens of class
	// k (Reference.Classes) in position bucket b; empty without classes.
	TokensByClass [][]Dist `json:"tokens_by_class,omitempty"`
}

// Reference is a calibration: reference distributions for one analysis.
type Reference struct {
	Format   int       `json:"format"`
	Identity Identity  `json:"identity"`
	Created  time.Time `json:"created"`
	Buckets  []int     `json:"buckets"` // BucketStarts when built
	// LengthBuckets are LengthStarts when built.
	LengthBuckets []int `json:"length_buckets"`
	Prompts       int   `json:"prompts"`  // reference texts analyzed
	Prefixes      int   `json:"prefixes"` // prefixes of them analyzed as prompts of their own
	Skipped       int   `json:"skipped"`  // reference texts the analyzer refused
	// MaxPosition is the last token position any reference text reached;
	// later positions are extrapolated from the last bucket.
	MaxPosition int     `json:"max_position"`
	Layers      []Layer `json:"layers"`
	// Logit baselines (empty when the reference was analyzed without them):
	// per-token surprisal by position bucket, prompt-level mean surprisal,
	// mean entropy and mean max-softmax.
	TokenSurprisal []Dist `json:"token_surprisal"`
	// TokenSurprisalByClass[k][b]: per-token surprisal by token class and
	// position bucket (empty without classes or baselines).
	TokenSurprisalByClass [][]Dist `json:"token_surprisal_by_class,omitempty"`
	// Classes are the token classes per-token values are bucketed by
	// besides position (nil: position only).
	Classes    *TokenClasses `json:"token_classes,omitempty"`
	Surprisal  Dist          `json:"surprisal"`
	Entropy    Dist          `json:"entropy"`
	MaxSoftmax Dist          `json:"max_softmax"`
}

// Layer returns the reference at hidden state h.
func (r *Reference) Layer(h int) (*Layer, bool) {
	for i := range r.Layers {
		if r.Layers[i].Index == h {
			return &r.Layers[i], true
		}
	}
	return nil, false
}

// classDist returns the distribution for a token of class k at position
// pos: its (position bucket, class) cell when that has at least MinBucket
// values (pooled false), else what tokenDist gives for the position
// (pooled true; also when k < 0, the reference has no classes, or the
// position is past the longest reference text).
func (r *Reference) classDist(ds []Dist, byClass [][]Dist, pos, k int) (d *Dist, extrapolated, pooled bool) {
	if k >= 0 && k < len(byClass) && pos <= r.MaxPosition {
		if b := Bucket(pos); b < len(byClass[k]) && byClass[k][b].N >= MinBucket {
			return &byClass[k][b], false, false
		}
	}
	d, extrapolated = r.tokenDist(ds, pos)
	return d, extrapolated, true
}

// tokenDist returns the distribution for token position pos among
// per-bucket ones: its bucket's, or the nearest earlier bucket with at
// least MinBucket values. extrapolated reports a fallback, or a position
// past the longest reference text. nil when no bucket has enough values.
func (r *Reference) tokenDist(ds []Dist, pos int) (d *Dist, extrapolated bool) {
	b := min(Bucket(pos), len(ds)-1)
	extrapolated = pos > r.MaxPosition
	for ; b >= 0; b-- {
		if ds[b].N >= MinBucket {
			return &ds[b], extrapolated
		}
		extrapolated = true
		if b == 1 {
			break // position 0 (the sink) never stands in for later positions
		}
	}
	return nil, extrapolated
}

// promptDist returns the prompt-level distribution for a prompt of n
// tokens: its length bucket's, or when that has fewer than MinBucket values
// the nearest bucket that has enough (the shorter one on a tie), or the
// pooled distribution when none has. note describes a fallback ("" when
// the prompt's own bucket was used); label names the values compared with.
func (l *Layer) promptDist(n int) (d *Dist, label, note string) {
	own := LengthBucket(n)
	if len(l.PromptByLength) != len(LengthStarts) {
		return &l.Prompt, "prompts of any length", "the calibration has no length buckets"
	}
	if l.PromptByLength[own].N >= MinBucket {
		return &l.PromptByLength[own], LengthLabel(own), ""
	}
	for dist := 1; dist < len(LengthStarts); dist++ {
		for _, b := range []int{own - dist, own + dist} {
			if b >= 0 && b < len(LengthStarts) && l.PromptByLength[b].N >= MinBucket {
				return &l.PromptByLength[b], LengthLabel(b), fmt.Sprintf("the calibration has %d reference values for prompts of %s (at least %d are needed), so this %d-token prompt was compared with prompts of %s",
					l.PromptByLength[own].N, LengthLabel(own), MinBucket, n, LengthLabel(b))
			}
		}
	}
	return &l.Prompt, "prompts of any length", fmt.Sprintf("no prompt-length bucket of the calibration has %d values, so this %d-token prompt was compared with reference prompts of every length", MinBucket, n)
}

// Aggregator gives the prompt-level value of one layer of a result, in
// ln-ratio units, and whether it is defined. Front ends pass their
// prompt-level rule (internal/lmood: Rule.Aggregator) so that calibration
// and scoring aggregate the same way.
type Aggregator func(res *analyze.Result, l *analyze.Layer) (float64, bool)

// LnRatio is the default Aggregator: the log of the mean prompt-level ratio
// over nudges (Layer.Ratio, the flattened-selection angle ratio).
func LnRatio(_ *analyze.Result, l *analyze.Layer) (float64, bool) {
	if !l.Ratio.Defined || !(l.Ratio.Mean > 0) {
		return 0, false
	}
	return math.Log(l.Ratio.Mean), true
}

// lnStat is the log of a per-token ratio, when defined.
func lnStat(s analyze.Stat) (float64, bool) {
	if !s.Defined || !(s.Mean > 0) {
		return 0, false
	}
	return math.Log(s.Mean), true
}

// Builder collects reference values from analyzed texts. It keeps the
// values, not the results.
type Builder struct {
	id       Identity
	agg      Aggregator
	prompt   map[int][]float64   // pooled
	byLen    map[int][][]float64 // by length bucket
	tokens   map[int][][]float64
	tokSurp  [][]float64
	classes  *TokenClasses
	byClass  map[int][][][]float64 // [class][bucket]
	surClass [][][]float64
	surp     []float64
	ent      []float64
	maxSoft  []float64
	n, skip  int
	prefixes int
	maxPos   int
	baseline int // results with baselines
}

// NewBuilder starts a reference for the analysis id. agg nil = LnRatio.
func NewBuilder(id Identity, agg Aggregator) *Builder {
	if agg == nil {
		agg = LnRatio
	}
	nb := len(BucketStarts)
	b := &Builder{id: id, agg: agg, prompt: map[int][]float64{}, byLen: map[int][][]float64{}, tokens: map[int][][]float64{}, tokSurp: make([][]float64, nb)}
	for _, h := range id.HiddenStates {
		b.tokens[h] = make([][]float64, nb)
		b.byLen[h] = make([][]float64, len(LengthStarts))
	}
	return b
}

// check verifies that a result's layers are those of the identity.
func (b *Builder) check(r *analyze.Result) error {
	if len(r.Layers) != len(b.id.HiddenStates) {
		return fmt.Errorf("calibrate: result has %d layers, the calibration %d (%v)", len(r.Layers), len(b.id.HiddenStates), b.id.HiddenStates)
	}
	for i, h := range b.id.HiddenStates {
		if l := &r.Layers[i]; l.Index != h || string(l.Site) != b.id.Site {
			return fmt.Errorf("calibrate: result layer %d is %s.%d, the calibration expects %s.%d", i, l.Site, l.Index, b.id.Site, h)
		}
	}
	return nil
}

// addPrompt records the prompt-level values of r, pooled and in its
// length bucket.
func (b *Builder) addPrompt(r *analyze.Result) {
	k := LengthBucket(len(r.Tokens))
	for i, h := range b.id.HiddenStates {
		if v, ok := b.agg(r, &r.Layers[i]); ok {
			b.prompt[h] = append(b.prompt[h], v)
			b.byLen[h][k] = append(b.byLen[h][k], v)
		}
	}
}

// AddPrefix includes an analyzed prefix of a reference text: a prompt of
// its own for the prompt-level length buckets only (its per-token values
// and baselines repeat those of the whole text and are not counted again).
func (b *Builder) AddPrefix(r *analyze.Result) error {
	if err := b.check(r); err != nil {
		return err
	}
	b.addPrompt(r)
	b.prefixes++
	return nil
}

// SetClasses makes the builder bucket per-token values by the token
// classes c as well as by position (nil: position only). Call it before
// Add.
func (b *Builder) SetClasses(c *TokenClasses) {
	b.classes = c
	b.byClass, b.surClass = map[int][][][]float64{}, nil
	if c.N() == 0 {
		return
	}
	nb := len(BucketStarts)
	grid := func() [][][]float64 {
		g := make([][][]float64, c.N())
		for k := range g {
			g[k] = make([][]float64, nb)
		}
		return g
	}
	for _, h := range b.id.HiddenStates {
		b.byClass[h] = grid()
	}
	b.surClass = grid()
}

// Add includes one analyzed reference text. Its layers must be those of
// the identity. Its tokens are classed by the builder's classes
// (SetClasses).
func (b *Builder) Add(r *analyze.Result) error {
	return b.AddClassed(r, nil)
}

// AddClassed is Add with the class of each token of r given (nil: from
// the builder's classes), for classes that depend on the text, such as a
// token's frequency in the other reference texts.
func (b *Builder) AddClassed(r *analyze.Result, classes []int) error {
	if err := b.check(r); err != nil {
		return err
	}
	if classes != nil && len(classes) != len(r.Tokens) {
		return fmt.Errorf("calibrate: %d token classes for %d tokens", len(classes), len(r.Tokens))
	}
	class := func(t int) int {
		if b.classes.N() == 0 {
			return -1
		}
		if classes != nil {
			return classes[t]
		}
		return b.classes.Class(r.Tokens[t].ID)
	}
	b.addPrompt(r)
	for i, h := range b.id.HiddenStates {
		l := &r.Layers[i]
		for t, s := range l.TokenRatio {
			if v, ok := lnStat(s); ok {
				k := Bucket(t)
				b.tokens[h][k] = append(b.tokens[h][k], v)
				if c := class(t); c >= 0 && c < b.classes.N() {
					b.byClass[h][c][k] = append(b.byClass[h][c][k], v)
				}
			}
		}
	}
	if bl := r.Baselines; bl != nil {
		b.baseline++
		for t := 1; t < len(bl.Tokens); t++ {
			k := Bucket(t)
			b.tokSurp[k] = append(b.tokSurp[k], bl.Tokens[t])
			if c := class(t); c >= 0 && c < b.classes.N() {
				b.surClass[c][k] = append(b.surClass[c][k], bl.Tokens[t])
			}
		}
		if len(r.Tokens) > 1 {
			b.surp = append(b.surp, bl.Surprisal)
			b.ent = append(b.ent, bl.Entropy)
			b.maxSoft = append(b.maxSoft, bl.MaxSoftmax)
		}
	}
	b.n++
	b.maxPos = max(b.maxPos, len(r.Tokens)-1)
	return nil
}

// Skip counts a reference text the analyzer refused.
func (b *Builder) Skip() { b.skip++ }

// Reference finishes the calibration. It fails with ErrTooSmall when fewer
// than MinPrompts texts were added.
func (b *Builder) Reference() (*Reference, error) {
	if b.n < MinPrompts {
		return nil, fmt.Errorf("calibrate: %w: %d usable texts (%d refused), at least %d are needed; give more or longer reference texts", ErrTooSmall, b.n, b.skip, MinPrompts)
	}
	r := &Reference{
		Format: FormatVersion, Identity: b.id, Created: time.Now().UTC(), Buckets: slices.Clone(BucketStarts),
		LengthBuckets: slices.Clone(LengthStarts), Prompts: b.n, Prefixes: b.prefixes, Skipped: b.skip, MaxPosition: b.maxPos,
	}
	r.Identity.HiddenStates = slices.Clone(b.id.HiddenStates)
	for _, h := range b.id.HiddenStates {
		l := Layer{Index: h, Prompt: NewDist(b.prompt[h])}
		for _, vs := range b.byLen[h] {
			l.PromptByLength = append(l.PromptByLength, NewDist(vs))
		}
		for _, vs := range b.tokens[h] {
			l.Tokens = append(l.Tokens, NewDist(vs))
		}
		l.TokensByClass = distGrid(b.byClass[h])
		r.Layers = append(r.Layers, l)
	}
	for _, vs := range b.tokSurp {
		r.TokenSurprisal = append(r.TokenSurprisal, NewDist(vs))
	}
	if b.classes.N() > 0 {
		r.Classes = b.classes
		if b.baseline > 0 {
			r.TokenSurprisalByClass = distGrid(b.surClass)
		}
	}
	r.Surprisal, r.Entropy, r.MaxSoftmax = NewDist(b.surp), NewDist(b.ent), NewDist(b.maxSoft)
	return r, nil
}

// distGrid builds the distributions of values by [class][bucket].
func distGrid(g [][][]float64) [][]Dist {
	var out [][]Dist
	for _, row := range g {
		var ds []Dist
		for _, vs := range row {
			ds = append(ds, NewDist(vs))
		}
		out = append(out, ds)
	}
	return out
}

// Save writes r as JSON to dir/r.Identity.FileName() (through a temporary
// file, so a reader never sees half a file) and returns the path.
func (r *Reference) Save(dir string) (string, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("calibrate: encode: %w", err)
	}
	path := filepath.Join(dir, r.Identity.FileName())
	f, err := os.CreateTemp(dir, ".calibration-*.tmp")
	if err != nil {
		return "", fmt.Errorf("calibrate: save in %s: %w", dir, err)
	}
	_, werr := f.Write(data)
	merr := f.Chmod(0o644) // CreateTemp makes it 0600; readable like the model's other files
	cerr := f.Close()
	if err := errors.Join(werr, merr, cerr); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("calibrate: save %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("calibrate: save %s: %w", path, err)
	}
	return path, nil
}

// read decodes a calibration file and checks its format.
func read(path string) (*Reference, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("calibrate: %w: %s does not exist (run `lmood calibrate`)", ErrNotFound, path)
		}
		return nil, fmt.Errorf("calibrate: read %w", err)
	}
	var r Reference
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("calibrate: %s is corrupt (%v); delete it and run `lmood calibrate` again", path, err)
	}
	if r.Format != FormatVersion {
		return nil, fmt.Errorf("calibrate: %w: %s has format %d, this lmood reads %d (format 3 added token classes); run `lmood calibrate` again", ErrMismatch, path, r.Format, FormatVersion)
	}
	grid := func(g [][]Dist) bool {
		if len(g) == 0 {
			return true
		}
		if len(g) != r.Classes.N() {
			return false
		}
		for _, row := range g {
			if len(row) != len(BucketStarts) {
				return false
			}
		}
		return true
	}
	if err := r.Classes.check(); err != nil || !grid(r.TokenSurprisalByClass) {
		return nil, fmt.Errorf("calibrate: %s is inconsistent (token classes: %v); delete it and run `lmood calibrate` again", path, err)
	}
	if !slices.Equal(r.Buckets, BucketStarts) || !slices.Equal(r.LengthBuckets, LengthStarts) || len(r.Layers) != len(r.Identity.HiddenStates) ||
		len(r.TokenSurprisal) != len(BucketStarts) || r.Prompts < MinPrompts {
		return nil, fmt.Errorf("calibrate: %s is inconsistent (buckets, layers or size); delete it and run `lmood calibrate` again", path)
	}
	for _, l := range r.Layers {
		if len(l.Tokens) != len(BucketStarts) || len(l.PromptByLength) != len(LengthStarts) || !grid(l.TokensByClass) {
			return nil, fmt.Errorf("calibrate: %s is inconsistent (layer %d has %d position buckets); delete it and run `lmood calibrate` again", path, l.Index, len(l.Tokens))
		}
	}
	return &r, nil
}

// Load reads the calibration at path and refuses it, with an error
// wrapping ErrMismatch that names each difference, unless it was built for
// the analysis want.
func Load(path string, want Identity) (*Reference, error) {
	r, err := read(path)
	if err != nil {
		return nil, err
	}
	if err := r.Identity.Check(want); err != nil {
		return nil, fmt.Errorf("calibrate: %s refused: %w; run `lmood calibrate` with this analysis's options", path, err)
	}
	return r, nil
}

// Find looks in dir for a calibration of the analysis want: the file named
// want.FileName(), else any calibration-<site>-*.json whose identity
// covers want (e.g. one built for more hidden states). With none it
// returns an error wrapping ErrNotFound that names, for each calibration
// file of the site, why it does not apply.
func Find(dir string, want Identity) (*Reference, string, error) {
	exact := filepath.Join(dir, want.FileName())
	if r, err := Load(exact, want); err == nil {
		return r, exact, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, "", err
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "calibration-"+want.Site+"-*.json"))
	sort.Strings(paths)
	var why []string
	for _, p := range paths {
		r, err := read(p)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if m := r.Identity.mismatches(want); len(m) > 0 {
			why = append(why, filepath.Base(p)+": "+strings.Join(m, "; "))
			continue
		}
		return r, p, nil
	}
	refused := ""
	if len(why) > 0 {
		refused = " (refused: " + strings.Join(why, " | ") + ")"
	}
	return nil, "", fmt.Errorf("calibrate: %w in %s%s; run `lmood calibrate` with this analysis's options", ErrNotFound, dir, refused)
}
