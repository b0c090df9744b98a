package lmood

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lmood/lmood/internal/eval"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/store"
)

// Batch scoring: a corpus of prompts scored into a JSON Lines file that a
// killed run resumes. Every front end that scores a corpus (`lmood score
// -o`, the Beam pipeline) shares the input rules, ids, sharding and setup
// fingerprint defined here, so their records are byte-identical.

// Prompt is one prompt of a corpus with its id.
type Prompt struct {
	// ID is the prompt's id as compact JSON: the "id" of a JSON Lines
	// input (a string or a number, carried through as given), else
	// [TextID] of the text.
	ID json.RawMessage
	// Text is the prompt.
	Text string
	// Line is the 1-based line number in the input (0 = unknown).
	Line int
}

// TextID is the id of a prompt that came without one: the first 16 hex
// digits of the SHA-256 of its text, as a JSON string. It is a content id,
// not a line number, so that any reader (a Beam worker reading one split
// of a file knows no line numbers) gives a prompt the same id.
func TextID(text string) json.RawMessage {
	sum := sha256.Sum256([]byte(text))
	return json.RawMessage(`"` + hex.EncodeToString(sum[:8]) + `"`)
}

// InputFormat is how a corpus file is read.
type InputFormat int

const (
	// FormatText reads one prompt per line; blank lines and lines starting
	// with '#' are skipped.
	FormatText InputFormat = iota
	// FormatJSONL reads one JSON object per line: {"text": ..., "id": ...}
	// (id optional); blank lines are skipped.
	FormatJSONL
)

// ParseInputFormat parses "text", "jsonl" or "auto" (JSON Lines when path
// ends in .jsonl, .ndjson or .json, else text).
func ParseInputFormat(name, path string) (InputFormat, error) {
	switch name {
	case "text":
		return FormatText, nil
	case "jsonl":
		return FormatJSONL, nil
	case "", "auto":
		p := strings.ToLower(path)
		for _, ext := range []string{".jsonl", ".ndjson", ".json"} {
			if strings.HasSuffix(p, ext) {
				return FormatJSONL, nil
			}
		}
		return FormatText, nil
	}
	return 0, optionErr("input-format", "want text, jsonl or auto, got %q", name)
}

// ParsePromptLine parses one input line (n: its 1-based number, 0 if
// unknown). skip is true for lines the format ignores. A UTF-8 byte-order
// mark at the start of the line and trailing carriage returns are dropped.
func ParsePromptLine(line string, n int, f InputFormat) (p Prompt, skip bool, err error) {
	line = strings.TrimRight(strings.TrimPrefix(line, "\uFEFF"), "\r")
	if strings.TrimSpace(line) == "" || (f == FormatText && strings.HasPrefix(line, "#")) {
		return Prompt{}, true, nil
	}
	if f == FormatText {
		return Prompt{ID: TextID(line), Text: line, Line: n}, false, nil
	}
	var rec struct {
		ID   json.RawMessage `json:"id"`
		Text *string         `json:"text"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		return Prompt{}, false, fmt.Errorf("%s: not a JSON object: %w", lineName(n), err)
	}
	if rec.Text == nil {
		return Prompt{}, false, fmt.Errorf("%s: no \"text\" field", lineName(n))
	}
	p = Prompt{Text: *rec.Text, Line: n}
	switch id := bytes.TrimSpace(rec.ID); {
	case len(id) == 0 || string(id) == "null":
		p.ID = TextID(p.Text)
	case id[0] == '"' || id[0] == '-' || (id[0] >= '0' && id[0] <= '9'):
		var buf bytes.Buffer
		if err := json.Compact(&buf, id); err != nil {
			return Prompt{}, false, fmt.Errorf("%s: id: %w", lineName(n), err)
		}
		p.ID = buf.Bytes()
	default:
		return Prompt{}, false, fmt.Errorf("%s: \"id\" must be a string or a number, got %s", lineName(n), id)
	}
	return p, false, nil
}

// lineName names input line n (0 = unknown) in errors.
func lineName(n int) string {
	if n <= 0 {
		return "input line"
	}
	return fmt.Sprintf("line %d", n)
}

// ReadCorpus reads every prompt of r in format f. A malformed line is an
// error naming it (errors.Is(err, ErrUsage) holds), as is an input with no
// prompt or with one id given to two different texts. A prompt repeated
// with the same id is kept once; dups counts the repeats dropped.
func ReadCorpus(r io.Reader, f InputFormat) (prompts []Prompt, dups int, err error) {
	seen := map[string]string{} // id -> text
	err = eval.ScanLines(r, false, func(n int, line string) error {
		p, skip, err := ParsePromptLine(line, n, f)
		if err != nil || skip {
			return err
		}
		if text, ok := seen[string(p.ID)]; ok {
			if text != p.Text {
				return fmt.Errorf("line %d: id %s was given before to another text; ids must identify one prompt", n, p.ID)
			}
			dups++
			return nil
		}
		seen[string(p.ID)] = p.Text
		prompts = append(prompts, p)
		return nil
	})
	if err != nil {
		return nil, 0, UsageError(err)
	}
	if len(prompts) == 0 {
		return nil, 0, UsageError(eval.ErrNoPrompts)
	}
	return prompts, dups, nil
}

// Shard selects part I of N of a corpus (0 <= I < N). The zero value (N =
// 0) and 0/1 select everything.
type Shard struct{ I, N int }

// ParseShard parses "I/N" with 0 <= I < N.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, optionErr("shard", "want I/N with 0 <= I < N (e.g. 0/4 ... 3/4), got %q", s)
	}
	return Shard{I: i, N: n}, nil
}

// Has reports whether the prompt with this id belongs to the shard: the
// SHA-256 of the id picks one of N shards, so shards never overlap, their
// union is the whole corpus, and the split does not depend on input order.
func (s Shard) Has(id json.RawMessage) bool {
	if s.N <= 1 {
		return true
	}
	sum := sha256.Sum256(id)
	var v uint64
	for _, b := range sum[:8] {
		v = v<<8 | uint64(b)
	}
	return v%uint64(s.N) == uint64(s.I)
}

// String returns "I/N".
func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.I, s.N) }

// SetupID fingerprints everything that shapes a score record's numbers at
// hidden state layer: the record's setup (model name, samples, sigma,
// seed, noise, isolation, direction, aggregation), the layer, position 0's
// treatment, the token limit, surprisal, the model's weights (the SHA-256
// of its GGUF and the converter version) and the graphs' revision; with a
// calibration c (nil: none), also c (its reference texts, build time and
// size), which shapes the calibrated values. 16 hex digits.
func (s *Session) SetupID(layer int, c *Calibration) string {
	m := s.model.Manifest
	type calibrationID struct {
		Reference string    `json:"reference"`
		Created   time.Time `json:"created"`
		Prompts   int       `json:"prompts"`
		Prefixes  int       `json:"prefixes"`
	}
	v := struct {
		Setup
		Layer            int            `json:"layer"`
		IncludeFirst     bool           `json:"include_first"`
		MaxTokens        int            `json:"max_tokens"`
		Surprisal        bool           `json:"surprisal"`
		GGUF             string         `json:"gguf_sha256"`
		ConverterVersion int            `json:"converter_version"`
		GraphRevision    int            `json:"graph_revision"`
		Calibration      *calibrationID `json:"calibration,omitempty"`
	}{Setup: s.Setup(), Layer: layer, IncludeFirst: s.opt.IncludeFirst, MaxTokens: s.opt.MaxTokens, Surprisal: s.opt.Surprisal,
		GGUF: m.Source.SHA256, ConverterVersion: m.ConverterVersion, GraphRevision: store.RoundingRevision}
	if c != nil && c.Ref != nil {
		v.Calibration = &calibrationID{c.Ref.Identity.Reference, c.Ref.Created, c.Ref.Prompts, c.Ref.Prefixes}
	}
	b, _ := json.Marshal(v) // plain fields: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ScorePrompt scores p at hidden state layer, with calibrated values from
// c (nil: none), and sets the record's id.
func (s *Session) ScorePrompt(p Prompt, layer int, c *Calibration) ScoreRecord {
	rec := s.ScoreCalibrated(p.Text, layer, c)
	rec.ID = p.ID
	return rec
}

// MarshalRecord encodes a record as one JSON line, exactly as `lmood score
// --json` writes it (HTML characters unescaped, newline at the end).
func MarshalRecord(rec ScoreRecord) ([]byte, error) {
	var buf bytes.Buffer
	if err := report.WriteJSONL(&buf, rec); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DefaultSyncEvery is how many records an [Output] writes between fsyncs.
const DefaultSyncEvery = 32

// ErrOutputInUse is returned when another process holds an output file.
var ErrOutputInUse = errors.New("output file is in use by another lmood process")

// Output is a resumable JSON Lines file of score records of one setup.
//
// Each record is written with one write(2) of the whole line, and the
// file is synced every SyncEvery records and on Close, so a killed run
// leaves complete lines and at most one partial line at the end, which
// [OpenOutput] truncates. The file is locked (flock) while open, so two
// processes never append to it at once.
type Output struct {
	f         *os.File
	path      string
	setupID   string
	done      map[string][32]byte // id -> SHA-256 of the prompt
	unsynced  int
	SyncEvery int // records between fsyncs (<= 0: DefaultSyncEvery)
	// Truncated is the size of the partial trailing line removed on open.
	Truncated int64
}

// OpenOutput opens (or creates) the output file at path for records of
// setupID, reads the records it holds, and cuts off a partial trailing
// line left by a killed run. A record of another setup, a line that is not
// a score record, or a record without setup_id is refused with an error
// saying what to do: records of different setups never share a file.
func OpenOutput(path, setupID string) (*Output, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("output %s: %w; wait for it or write to another file", path, ErrOutputInUse)
		}
		return nil, fmt.Errorf("output %s: lock: %w", path, err)
	}
	o := &Output{f: f, path: path, setupID: setupID, done: map[string][32]byte{}}
	if err := o.load(); err != nil {
		f.Close()
		return nil, err
	}
	return o, nil
}

// load reads the existing records and truncates a partial last line.
func (o *Output) load() error {
	data, err := io.ReadAll(o.f)
	if err != nil {
		return fmt.Errorf("output %s: read: %w", o.path, err)
	}
	complete := bytes.LastIndexByte(data, '\n') + 1
	if complete < len(data) {
		o.Truncated = int64(len(data) - complete)
		if err := o.f.Truncate(int64(complete)); err != nil {
			return fmt.Errorf("output %s: cut the partial last line: %w", o.path, err)
		}
		if err := o.f.Sync(); err != nil {
			return fmt.Errorf("output %s: sync: %w", o.path, err)
		}
	}
	if _, err := o.f.Seek(int64(complete), io.SeekStart); err != nil {
		return fmt.Errorf("output %s: seek: %w", o.path, err)
	}
	n := 0
	for line := range bytes.Lines(data[:complete]) {
		n++
		var rec struct {
			ID      json.RawMessage `json:"id"`
			Prompt  *string         `json:"prompt"`
			SetupID string          `json:"setup_id"`
		}
		if err := json.Unmarshal(line, &rec); err != nil || rec.Prompt == nil || len(rec.ID) == 0 {
			return UsageError(fmt.Errorf("output %s: line %d is not a score record with an id; give an output file that only this kind of run writes", o.path, n))
		}
		if rec.SetupID != o.setupID {
			return UsageError(fmt.Errorf("output %s: line %d was scored with another setup (setup_id %q, this run %s): options, layer or model differ; write to another file, or rerun with the options that wrote it", o.path, n, rec.SetupID, o.setupID))
		}
		o.done[string(rec.ID)] = sha256.Sum256([]byte(*rec.Prompt))
	}
	return nil
}

// Len returns how many records the file holds.
func (o *Output) Len() int { return len(o.done) }

// Done reports whether p has a record already. A record with p's id but
// another prompt is an error: the input changed under the same ids.
func (o *Output) Done(p Prompt) (bool, error) {
	h, ok := o.done[string(p.ID)]
	if !ok {
		return false, nil
	}
	if h != sha256.Sum256([]byte(p.Text)) {
		return false, UsageError(fmt.Errorf("output %s has a record for id %s with another prompt: the input changed; write to another file", o.path, p.ID))
	}
	return true, nil
}

// Write appends rec as one line with a single write and syncs every
// SyncEvery records.
func (o *Output) Write(rec ScoreRecord) error {
	line, err := MarshalRecord(rec)
	if err != nil {
		return err
	}
	if _, err := o.f.Write(line); err != nil {
		return fmt.Errorf("output %s: write: %w", o.path, err)
	}
	o.done[string(rec.ID)] = sha256.Sum256([]byte(rec.Prompt))
	o.unsynced++
	every := o.SyncEvery
	if every <= 0 {
		every = DefaultSyncEvery
	}
	if o.unsynced >= every {
		return o.Sync()
	}
	return nil
}

// Sync flushes written records to disk.
func (o *Output) Sync() error {
	o.unsynced = 0
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("output %s: sync: %w", o.path, err)
	}
	return nil
}

// Close syncs and closes the file (releasing its lock).
func (o *Output) Close() error {
	err := o.Sync()
	if cerr := o.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("output %s: close: %w", o.path, cerr)
	}
	return err
}

// BatchProgress is a batch run's state after each prompt.
type BatchProgress struct {
	Done, Total int // prompts scored in this run, and to score
	Elapsed     time.Duration
}

// Rate returns prompts per second so far (0 before the first).
func (p BatchProgress) Rate() float64 {
	if p.Done == 0 || p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// ETA estimates the time left at the rate so far (-1 = unknown).
func (p BatchProgress) ETA() time.Duration {
	r := p.Rate()
	if r == 0 {
		return -1
	}
	return time.Duration(float64(p.Total-p.Done) / r * float64(time.Second))
}

// BatchStats count what a batch run did.
type BatchStats struct {
	Input   int // prompts in the input (after dropping repeats)
	Shard   int // of those, in this run's shard
	Skipped int // in the shard with a record already (resumed)
	Scored  int // scored in this run
	Failed  int // of those, error records
	Elapsed time.Duration
}

// Scorer scores one prompt; *Session with a layer is one (see
// [Session.ScorePrompt]).
type Scorer func(Prompt) ScoreRecord

// RunBatch scores the prompts of shard that out has no record of, in
// input order, appending one record per prompt; progress (may be nil) is
// called after each. It stops between prompts when ctx is cancelled and
// returns ctx's error; everything written until then is kept, and a later
// run over the same output resumes.
func RunBatch(ctx context.Context, score Scorer, prompts []Prompt, shard Shard, out *Output, progress func(BatchProgress)) (BatchStats, error) {
	st := BatchStats{Input: len(prompts)}
	var todo []Prompt
	for _, p := range prompts {
		if !shard.Has(p.ID) {
			continue
		}
		st.Shard++
		done, err := out.Done(p)
		if err != nil {
			return st, err
		}
		if done {
			st.Skipped++
			continue
		}
		todo = append(todo, p)
	}
	start := time.Now()
	for _, p := range todo {
		if err := ctx.Err(); err != nil {
			st.Elapsed = time.Since(start)
			return st, err
		}
		rec := score(p)
		if err := out.Write(rec); err != nil {
			st.Elapsed = time.Since(start)
			return st, err
		}
		st.Scored++
		if rec.Error != "" {
			st.Failed++
		}
		if progress != nil {
			progress(BatchProgress{Done: st.Scored, Total: len(todo), Elapsed: time.Since(start)})
		}
	}
	st.Elapsed = time.Since(start)
	return st, out.Sync()
}
