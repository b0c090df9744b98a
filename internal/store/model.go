package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/fetch"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/tokenize"
)

// Model is an opened, converted model.
type Model struct {
	Dir      string // its version directory
	Manifest *Manifest
	weights  *os.File
	lock     *os.File // shared flock on Dir: an import replacing the model leaves it in place
	link     string   // the store path of the model's name, whose link chose Dir
	embd     Tensor
	// AccuracyLevel is the accuracy_level graphs give MatMulNBits for
	// block-quantized weights: 0 computes in float32, 4 lets onnxruntime
	// quantize activations to int8. Set it before building graphs, or use
	// WithAccuracy on a model shared by several sessions.
	AccuracyLevel int
	// view marks a model made by WithAccuracy: it shares the files of the
	// model it came from and does not close them.
	view bool
	// expanded places the float32 scales of factored block-quantized
	// weights in the file sessions read them from (nil: none).
	expanded *expandedLayout
}

// WithAccuracy returns m with graphs at MatMulNBits accuracy level n: m
// itself when it has that level, else a view that shares m's open files
// (close m, not the view; the view's Close does nothing). m is not
// changed, so sessions of different levels can share one open model.
func (m *Model) WithAccuracy(n int) *Model {
	if n == m.AccuracyLevel {
		return m
	}
	v := *m
	v.AccuracyLevel, v.view = n, true
	return &v
}

// Open opens the named model for reading. The version it opens stays
// readable until Close, even if an import replaces the model meanwhile.
func (s *Store) Open(name string) (*Model, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		dir, m, err := s.readManifest(name)
		if err != nil {
			return nil, err
		}
		lock := tryLock(dir, unix.LOCK_SH)
		if lock != nil {
			if d, _ := s.resolve(name); d == dir {
				model, err := s.openAt(name, dir, m)
				if err != nil {
					lock.Close()
					return nil, err
				}
				model.lock = lock
				return model, nil
			}
			lock.Close()
			// Our brief lock may have kept the last reader of this replaced
			// version from removing it: remove it as that reader would.
			if replaced(s.Dir(name), dir) {
				removeIfUnused(dir)
			}
		}
		// Replaced (or being removed) meanwhile: look again.
		if try == 50 {
			return nil, fmt.Errorf("store: model %q keeps changing while being opened; try again", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openAt opens the weights of the model in version directory dir.
func (s *Store) openAt(name, dir string, m *Manifest) (*Model, error) {
	embd, ok := m.Tensors[arch.TokenEmbd]
	if !ok || len(embd.Dims) != 2 && embd.NBits == nil {
		return nil, fmt.Errorf("store: %q has no embedding matrix in its manifest; re-convert it", name)
	}
	w, err := os.Open(filepath.Join(dir, m.Weights))
	if err != nil {
		return nil, fmt.Errorf("store: open weights of %q: %w; re-convert it", name, err)
	}
	fi, err := w.Stat()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := m.validate(fi.Size()); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: model %q: %w; re-convert it (`lmood pull` or `lmood import --force`)", name, err)
	}
	return &Model{Dir: dir, Manifest: m, weights: w, embd: embd, link: s.Dir(name), expanded: newExpandedLayout(m)}, nil
}

// validate checks a manifest's numbers before anything is sized from them,
// so a corrupt manifest is an error, never a crash or a huge allocation.
func (m *Manifest) validate(weightsSize int64) error {
	c := m.Config
	if c.Config == nil {
		return fmt.Errorf("manifest has no architecture configuration")
	}
	if err := c.Dims.Check(); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if filepath.Base(m.Weights) != m.Weights || filepath.Base(m.Tokenizer) != m.Tokenizer {
		return fmt.Errorf("manifest names files outside the model directory")
	}
	for name, t := range m.Tensors {
		n, ok := t.Bytes()
		if !ok || (t.Type != "" && t.Type != "float16" && t.Type != "uint8" && t.Type != "int8") {
			return fmt.Errorf("tensor %s has impossible dims %v or type %q", name, t.Dims, t.Type)
		}
		if q := t.NBits; q != nil {
			if len(t.Dims) != 3 || q.Bits != 4 && q.Bits != 8 || q.BlockSize < 16 || q.K <= 0 || q.K%q.BlockSize != 0 ||
				t.Dims[0] != int64(q.N) || t.Dims[1] != int64(q.K/q.BlockSize) || t.Dims[2] != int64(q.BlockSize*q.Bits/8) {
				return fmt.Errorf("quantized tensor %s has inconsistent dims %v for %+v", name, t.Dims, *q)
			}
			if err := m.checkFactored(name+".scales", t.Dims[0], t.Dims[1]); err != nil {
				return err
			}
			if q.Offsets {
				if err := m.checkFactored(name+".offsets", t.Dims[0], t.Dims[1]); err != nil {
					return err
				}
			}
		}
		if q := t.Int8; q != nil {
			a, ok := m.Tensors[name+".scales"]
			if t.Type != "int8" || len(t.Dims) != 2 || q.K <= 0 || q.N <= 0 || t.Dims[0] != int64(q.K) || t.Dims[1] != int64(q.N) ||
				!ok || len(a.Dims) != 1 || a.Dims[0] != int64(q.N) || a.Type != "" {
				return fmt.Errorf("int8 tensor %s has inconsistent dims %v or scales for %+v", name, t.Dims, *q)
			}
		}
		if t.Offset < 0 || t.Offset > weightsSize-n {
			return fmt.Errorf("weights.bin is truncated or corrupt (%s: %d bytes at offset %d, file has %d)", name, n, t.Offset, weightsSize)
		}
	}
	e := m.Tensors[arch.TokenEmbd]
	if q := e.NBits; q != nil {
		if q.N != c.Vocab || q.K != c.Dim {
			return fmt.Errorf("block-quantized embedding matrix is %d × %d, not vocab %d × width %d", q.N, q.K, c.Vocab, c.Dim)
		}
	} else if e.Type != "" || len(e.Dims) != 2 || e.Dims[0] != int64(c.Vocab) || e.Dims[1] != int64(c.Dim) {
		return fmt.Errorf("embedding matrix dims %v do not match vocab %d × width %d", e.Dims, c.Vocab, c.Dim)
	}
	return nil
}

// checkFactored checks the manifest's entry for name, the scales or
// offsets of a block-quantized weight of n rows of nb blocks (see NBits).
func (m *Manifest) checkFactored(name string, n, nb int64) error {
	a, ok := m.Tensors[name]
	sub, hasSub := m.Tensors[name+".sub"]
	switch {
	case !ok:
	case a.Type == "" && len(a.Dims) == 2 && a.Dims[0] == n && a.Dims[1] == nb:
		if !hasSub {
			return nil
		}
	case a.Type == "float16" && len(a.Dims) == 3 && a.Dims[0] == n && a.Dims[1] > 0 && nb%a.Dims[1] == 0 && a.Dims[2] == 1:
		g := nb / a.Dims[1]
		if !hasSub && g == 1 || hasSub && sub.Type == "int8" && slices.Equal(sub.Dims, []int64{n, a.Dims[1], g}) {
			return nil
		}
	}
	return fmt.Errorf("quantized tensor %s is missing or has inconsistent dims or types", name)
}

// Close releases the model's files. If an import replaced the model while
// it was open, and no other reader uses the replaced version, Close removes
// that version's directory: the last reader of a replaced conversion
// cleans it up, so it does not linger until the next import or prune.
func (m *Model) Close() error {
	if m == nil || m.weights == nil || m.view {
		return nil
	}
	err := m.weights.Close()
	m.weights = nil
	if m.lock != nil {
		m.lock.Close()
		m.lock = nil
		if replaced(m.link, m.Dir) {
			removeIfUnused(m.Dir) // else another reader's Close (or a prune) removes it
		}
	}
	return err
}

// Config is the model's architecture: its common dimensions and its
// family's configuration.
func (m *Model) Config() arch.Spec { return m.Manifest.Config }

// Embeddings gathers the embedding rows of ids into a [len(ids), dim]
// row-major matrix, reading only those rows from disk, each scaled by the
// architecture's embedding scale (Gemma: √dim): hidden state 0, what the
// first block sees and what nudges are applied to.
func (m *Model) Embeddings(ids []int) ([]float32, error) {
	vocab, dim := int(m.embd.Dims[0]), m.Manifest.Config.Dim
	scale := m.Manifest.Config.Scale()
	out := make([]float32, len(ids)*dim)
	row := make([]float32, dim)
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("store: token id %d is outside the vocabulary (0..%d)", id, vocab-1)
		}
		if err := m.embeddingRow(id, row); err != nil {
			return nil, fmt.Errorf("store: read embedding of token %d: %w", id, err)
		}
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("store: %w: the embedding of token %d holds %v; run `lmood verify %s` and re-convert the model (`lmood import --force` or `lmood pull`)",
					ErrCorrupt, id, v, m.Manifest.Name)
			}
			out[i*dim+j] = v * scale
		}
	}
	return out, nil
}

// embeddingRow reads the embedding of token id into row (dim values):
// float32 as stored, or dequantized from its MatMulNBits blocks
// ((code − zero point) · scale, as the tied head's MatMulNBits reads them).
func (m *Model) embeddingRow(id int, row []float32) error {
	q := m.embd.NBits
	if q == nil {
		b := make([]byte, 4*len(row))
		if _, err := m.weights.ReadAt(b, m.embd.Offset+int64(id)*int64(len(b))); err != nil {
			return err
		}
		for j := range row {
			row[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
		}
		return nil
	}
	codes := make([]byte, q.K*q.Bits/8)
	if _, err := m.weights.ReadAt(codes, m.embd.Offset+int64(id)*int64(len(codes))); err != nil {
		return err
	}
	scales, zero, err := m.scalesZeros(arch.TokenEmbd, q, id, 1)
	if err != nil {
		return err
	}
	blocks := gguf.NBits{Rows: 1, Cols: q.K, Bits: q.Bits, BlockSize: q.BlockSize, Codes: codes, Scales: scales, ZeroPoints: zero}
	copy(row, blocks.Dequantize())
	return nil
}

// Tokenizer builds the model's tokenizer from its stored metadata.
func (m *Model) Tokenizer() (*tokenize.Tokenizer, error) {
	return loadTokenizer(m.Dir, m.Manifest)
}

// Tokenizer builds the named model's tokenizer without opening its weights.
func (s *Store) Tokenizer(name string) (*tokenize.Tokenizer, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	dir, m, err := s.readManifest(name)
	if err != nil {
		return nil, err
	}
	return loadTokenizer(dir, m)
}

// TokenizerKind returns the tokenizer model and pre-tokenizer
// (tokenizer.ggml.model and .pre) of the named converted model, reading
// only the start of its tokenizer.json.
func (s *Store) TokenizerKind(name string) (model, pre string, err error) {
	if err := CheckName(name); err != nil {
		return "", "", err
	}
	if err := s.check(); err != nil {
		return "", "", err
	}
	dir, m, err := s.readManifest(name)
	if err != nil {
		return "", "", err
	}
	if filepath.Base(m.Tokenizer) != m.Tokenizer {
		return "", "", fmt.Errorf("store: manifest names tokenizer %q outside the model directory; re-convert the model", m.Tokenizer)
	}
	f, err := os.Open(filepath.Join(dir, m.Tokenizer))
	if err != nil {
		return "", "", fmt.Errorf("store: read tokenizer: %w; re-convert the model", err)
	}
	defer f.Close()
	model, pre, err = vocabKind(json.NewDecoder(bufio.NewReader(f)))
	if err != nil {
		return "", "", fmt.Errorf("store: tokenizer.json of %q: %w; re-convert the model", name, err)
	}
	return model, pre, nil
}

// vocabKind reads the "Model" and "Pre" fields of a tokenize.Vocab JSON
// object, stopping once both are seen (they come first, before the long
// token lists).
func vocabKind(dec *json.Decoder) (model, pre string, err error) {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", "", fmt.Errorf("not a JSON object (%v)", err)
	}
	seen := 0
	for seen < 2 && dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", "", err
		}
		key, _ := t.(string)
		switch key {
		case "Model":
			err = dec.Decode(&model)
			seen++
		case "Pre":
			err = dec.Decode(&pre)
			seen++
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return "", "", err
		}
	}
	return model, pre, nil
}

func loadTokenizer(dir string, m *Manifest) (*tokenize.Tokenizer, error) {
	if filepath.Base(m.Tokenizer) != m.Tokenizer {
		return nil, fmt.Errorf("store: manifest names tokenizer %q outside the model directory; re-convert the model", m.Tokenizer)
	}
	data, err := os.ReadFile(filepath.Join(dir, m.Tokenizer))
	if err != nil {
		return nil, fmt.Errorf("store: read tokenizer: %w; re-convert the model", err)
	}
	var v tokenize.Vocab
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("store: tokenizer.json is corrupt: %w; re-convert the model", err)
	}
	t, err := tokenize.New(v)
	if err != nil {
		return nil, fmt.Errorf("store: tokenizer: %w", err)
	}
	return t, nil
}

// Lookup implements onnx.WeightSource over weights.bin.
func (m *Model) Lookup(name string) (onnx.ExternalTensor, bool) {
	t, ok := m.Manifest.Tensors[name]
	if !ok {
		return onnx.ExternalTensor{}, false
	}
	e := onnx.ExternalTensor{Location: m.Manifest.Weights, Offset: t.Offset, Dims: t.Dims}
	switch t.Type {
	case "uint8":
		e.Type = onnx.Uint8
	case "int8":
		e.Type = onnx.Int8
	}
	if q := t.Int8; q != nil {
		s, ok := m.Lookup(name + ".scales")
		if !ok {
			return onnx.ExternalTensor{}, false
		}
		e.Int8 = &onnx.Int8Linear{K: int64(q.K), N: int64(q.N), Scales: s}
	}
	if q := t.NBits; q != nil {
		nb := &onnx.NBits{K: int64(q.K), N: int64(q.N), Bits: int64(q.Bits), BlockSize: int64(q.BlockSize),
			AccuracyLevel: int64(m.AccuracyLevel)}
		if x, ok := m.expanded.entry(name); ok {
			dims := []int64{int64(x.rows), int64(x.blocks)}
			nb.Scales = onnx.ExternalTensor{Location: expandedFile, Offset: x.scales, Dims: dims}
			if x.zero >= 0 {
				nb.Zero = &onnx.ExternalTensor{Location: expandedFile, Offset: x.zero, Dims: dims}
			}
		} else if nb.Scales, ok = m.Lookup(name + ".scales"); !ok { // float32, as stored
			return onnx.ExternalTensor{}, false
		}
		e.NBits = nb
	}
	return e, true
}

// Int8 reports whether the model keeps linear weights as int8 codes
// (PrecisionInt8), which its graphs multiply anchored on batch row 0.
func (m *Model) Int8() bool {
	for _, t := range m.Manifest.Tensors {
		if t.Int8 != nil {
			return true
		}
	}
	return false
}

// Quantized reports whether the model keeps any weight block-quantized.
func (m *Model) Quantized() bool {
	for _, t := range m.Manifest.Tensors {
		if t.NBits != nil {
			return true
		}
	}
	return false
}

// Graph returns the path of the graph with the given options, building and
// caching it in the model directory the first time it is asked for.
func (m *Model) Graph(opt arch.GraphOptions) (string, error) {
	path := m.graphPath(opt)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return m.buildGraph(opt, path)
}

// RebuildGraph builds the graph again even if a cached file exists (for a
// cached file that onnxruntime cannot load).
func (m *Model) RebuildGraph(opt arch.GraphOptions) (string, error) {
	return m.buildGraph(opt, m.graphPath(opt))
}

// OpenSession opens an onnxruntime session on the graph for opt (input
// named input, outputs outs). A cached graph that onnxruntime cannot load
// (damaged on disk) is rebuilt once before giving up; the error is then the
// first load's.
//
// A model without block-quantized weights is opened without onnxruntime's
// weight prepacking: its MatMuls then read weights.bin through
// onnxruntime's memory map, shared by every process using the model,
// instead of private packed copies (measured on SmolLM2-135M: two
// processes' PSS 572 → 368 MiB, session open 9.1 → 3.4 s, scoring time
// unchanged; README, "Sharing weights between processes").
func (m *Model) OpenSession(opt arch.GraphOptions, input string, outs []runtime.Output, so runtime.SessionOptions) (*runtime.Session, error) {
	if !m.Quantized() {
		so.DisablePrepacking = true
	}
	path, err := m.Graph(opt)
	if err != nil {
		return nil, err
	}
	s, err := m.newSession(opt, path, input, outs, so)
	if err == nil {
		return s, nil
	}
	path, rerr := m.RebuildGraph(opt)
	if rerr != nil {
		return nil, err
	}
	return m.newSession(opt, path, input, outs, so)
}

// GraphRevision is bumped when the graphs change form without changing
// what they compute (which would bump ConverterVersion): cached graphs of
// another revision are not reused. Revision 2: the symbolic seq length is
// kept through attention (nn.Graph.Positions), so int8 graphs open in
// time linear in their depth. Revision 3: an int8 model's drift graphs are
// anchored at any depth (int8FloatForm). Revision 4: opset 21, int8
// activations quantized by one QuantizeLinear per row block (same codes).
// Revision 5: heads kept token-major until attention (one transpose per
// operand), queries scaled by their rotary tables. Revision 6: rotary
// embeddings by onnxruntime's RotaryEmbedding (one node where there were
// five), the anchor row's rounding error computed by DequantizeLinear and
// quantized with a fixed step, one zero-point tensor per row shape
// (SmolLM2's middle graph: 2121 nodes run per forward pass, 2946 before);
// ratios move by about 0.01 of their spread over K. Revision 7: a key/value
// head's grouped queries are one matrix in attention, keys transposed
// inside the product (nn.Graph.SoftCappedAttention); the same numbers bit
// for bit. Revision 8: an int8 model's graphs on the way to logits code
// their activations row by row in two levels and multiply in int8
// (int8RowwiseForm), where they dequantized every weight to float32 at
// every run.
const GraphRevision = 8

// RoundingRevision is the last GraphRevision whose graphs compute
// different numbers from the revision before (a new form may round
// differently): calibrations and score setup IDs record it, so that they
// stay valid across revisions that change only the form. A new revision
// leaves it alone only if `lmood score --json --surprisal` on the probe
// prompts gives the same numbers bit for bit before and after (setup_id
// aside), on an int8 and a float32 store: calibrations hold surprisal
// distributions too, and sample their passages through the logits graphs.
// (Revision 8 changed only those graphs' numbers, on int8 stores.)
const RoundingRevision = 8

// graphPath names the cached graph file for opt. The name lists the
// output set (sorted, so the order asked in does not matter), or a hash of
// it when long, and the graph revision; a head-only graph is
// "graph-head.r7.onnx". Graphs cached under older names are not reused.
func (m *Model) graphPath(opt arch.GraphOptions) string {
	rev := fmt.Sprintf(".r%d.onnx", GraphRevision)
	if opt.Head {
		return filepath.Join(m.Dir, "graph-head"+m.accSuffix()+rev)
	}
	names := make([]string, len(opt.Outputs))
	for i, p := range opt.Outputs {
		names[i] = p.Name()
	}
	slices.Sort(names)
	key := strings.Join(names, "+")
	if len(key) > 60 {
		sum := sha256.Sum256([]byte(key))
		key = "set-" + hex.EncodeToString(sum[:8])
	}
	return filepath.Join(m.Dir, "graph-"+key+m.accSuffix()+rev)
}

// accSuffix tells graphs of another accuracy level apart.
func (m *Model) accSuffix() string {
	if m.AccuracyLevel == 0 || !m.Quantized() {
		return ""
	}
	return fmt.Sprintf("-acc%d", m.AccuracyLevel)
}

// int8RowwiseForm reports whether a graph of an int8 model codes each
// activation row on its own (onnx.Int8Linear.Rowwise: about 15 bits, two
// int8 GEMMs) instead of anchoring the batch on its clean copy: the graphs
// on the way to logits (the output head, logits, the final norm), which
// give the logit baselines, surprisal and sampled text from rows that are
// not nudged copies of row 0. Drift graphs at any depth are anchored.
// (Until graph revision 8 these graphs multiplied in float32 on the int8
// weights dequantized at every run; until revision 3 drift graphs deeper
// than 16 blocks did too.)
func int8RowwiseForm(opt arch.GraphOptions, layers int) bool {
	if opt.Head {
		return true
	}
	for _, p := range opt.Outputs {
		if p.Site == arch.SiteLogits || p.Site == arch.SiteNorm && p.Index >= layers {
			return true
		}
	}
	return false
}

// rowwiseInt8 serves a model's int8 linear weights for the rowwise form.
type rowwiseInt8 struct{ *Model }

func (r rowwiseInt8) Lookup(name string) (onnx.ExternalTensor, bool) {
	e, ok := r.Model.Lookup(name)
	if ok && e.Int8 != nil {
		q := *e.Int8
		q.Rowwise = true
		e.Int8 = &q
	}
	return e, ok
}

// graphSource is the weight source the graph for opt is built on: the model,
// or for an int8 model's rowwise graphs rowwiseInt8.
func (m *Model) graphSource(opt arch.GraphOptions) onnx.WeightSource {
	if m.Int8() && int8RowwiseForm(opt, m.Config().Layers) {
		return rowwiseInt8{m}
	}
	return m
}

func (m *Model) buildGraph(opt arch.GraphOptions, path string) (string, error) {
	model, err := m.Manifest.Config.Build(m.graphSource(opt), opt)
	if err != nil {
		return "", fmt.Errorf("store: build graph: %w", err)
	}
	data, err := onnx.Marshal(model)
	if err != nil {
		return "", err
	}
	if _, err := fetch.WriteAtomic(path, bytes.NewReader(data)); err != nil {
		return "", fmt.Errorf("store: write graph: %w", err)
	}
	return path, nil
}

// Verify re-reads the named model's weights.bin and checks every tensor
// against the SHA-256 recorded at conversion. It returns the names of the
// tensors that differ (an error wrapping ErrCorrupt then says so too).
func (s *Store) Verify(ctx context.Context, name string) ([]string, error) {
	model, err := s.Open(name)
	if err != nil {
		return nil, err
	}
	defer model.Close()
	man := model.Manifest
	names := make([]string, 0, len(man.Tensors))
	for n := range man.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	var bad []string
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("store: verify %s: %w", name, err)
		}
		t := man.Tensors[n]
		if t.SHA256 == "" {
			return nil, fmt.Errorf("store: verify %s: tensor %s has no recorded digest; re-convert the model", name, n)
		}
		size, _ := t.Bytes()
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(model.weights, t.Offset, size)); err != nil {
			return nil, fmt.Errorf("store: verify %s: read %s: %w", name, n, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != t.SHA256 {
			bad = append(bad, n)
		}
	}
	if len(bad) > 0 {
		return bad, fmt.Errorf("store: %w: %d of %d tensors of %q differ from what was converted (%s); re-convert it (`lmood import --force` or `lmood pull`)",
			ErrCorrupt, len(bad), len(names), name, strings.Join(firstN(bad, 5), ", "))
	}
	return nil, nil
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}

// GraphWeightBytes returns the bytes of stored weights the graph for opt
// reads, each tensor counted once as stored (a block-quantized tensor with
// its scales and zero points at float32, as a session expands them): what
// an onnxruntime session on that graph loads. The graph is built in
// memory, not written.
func (m *Model) GraphWeightBytes(opt arch.GraphOptions) (int64, error) {
	rec := &weightCounter{m: m, seen: map[string]bool{}}
	if _, err := m.Manifest.Config.Build(rec, opt); err != nil {
		return 0, fmt.Errorf("store: size the graph of %s: %w", m.Manifest.Name, err)
	}
	return rec.bytes, nil
}

// weightCounter is a WeightSource that adds up the tensors looked up.
type weightCounter struct {
	m     *Model
	seen  map[string]bool
	bytes int64
}

func (w *weightCounter) Lookup(name string) (onnx.ExternalTensor, bool) {
	e, ok := w.m.Lookup(name)
	if !ok || w.seen[name] {
		return e, ok
	}
	w.seen[name] = true
	b, _ := w.m.Manifest.Tensors[name].Bytes()
	w.bytes += b
	switch {
	case e.Int8 != nil:
		b, _ = w.m.Manifest.Tensors[name+".scales"].Bytes()
		w.bytes += b
	case e.NBits != nil:
		// A session holds the scales and zero points as float32, one of
		// each per block, whatever their stored form.
		n := e.NBits.N * e.NBits.K / e.NBits.BlockSize * 4
		if e.NBits.Zero != nil {
			n *= 2
		}
		w.bytes += n
	}
	return e, ok
}
