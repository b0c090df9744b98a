package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/store"
)

func init() {
	register.DoFn3x1[context.Context, string, func(string), error](&scoreFn{})
	register.Emitter1[string]()
	register.Combiner3[core.CorpusSummary, string, string](&summaryFn{})
}

// config is one pipeline's settings: where prompts come from and go to,
// and how to score them (the CLI's analysis options).
type config struct {
	Input, Output, Summary string
	Format                 string // text, jsonl or auto
	Model                  string // store name or .gguf path, as on the workers
	StoreDir               string // model store on the workers ("" = lmood's cache)
	ORTLib                 string // onnxruntime on the workers ("" = default lookup)
	Layer                  int    // -1 = the middle
	Threads                int
	TopN                   int
	Options                core.Options
}

// check validates the settings before a pipeline is built, as the CLI
// does before it loads a model.
func (c config) check() error {
	if c.Input == "" || c.Output == "" {
		return fmt.Errorf("--input and --output are required")
	}
	if _, err := core.ParseInputFormat(c.Format, c.Input); err != nil {
		return err
	}
	if err := core.CheckLayer(c.Layer); err != nil {
		return err
	}
	if c.TopN < 0 {
		return fmt.Errorf("--top: must be >= 0, got %d", c.TopN)
	}
	return c.Options.Validate()
}

// buildPipeline reads prompts, scores them on the workers and writes one
// `lmood score --json` record per prompt, and with c.Summary a summary.
func buildPipeline(c config) (*beam.Pipeline, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	format, _ := core.ParseInputFormat(c.Format, c.Input)
	p, s := beam.NewPipelineWithRoot()
	// Reading is splittable (byte ranges of each file) and scoring is
	// fused with it, so a runner splits slow bundles and spreads a single
	// large file over workers (Prism does; Dataflow rebalances dynamically).
	lines := textio.Read(s, c.Input)
	records := beam.ParDo(s, &scoreFn{
		Model: c.Model, StoreDir: c.StoreDir, ORTLib: c.ORTLib, Format: int(format),
		Layer: c.Layer, Threads: c.Threads, Options: c.Options,
	}, lines)
	textio.Write(s, c.Output, records)
	if c.Summary != "" {
		sum := beam.Combine(s.Scope("summary"), &summaryFn{TopN: c.TopN}, records)
		textio.Write(s.Scope("summary"), c.Summary, sum)
	}
	return p, nil
}

// analyzersOpened counts analyzers opened in this process (one per
// worker DoFn instance), for logs and tests.
var analyzersOpened atomic.Int64

// beforeScore, when set (by tests, in this process), runs before each
// prompt is scored: it can make chosen elements slow enough for the
// runner to split their bundle, whatever the machine's speed.
var beforeScore func(core.Prompt)

// scoreFn scores prompt lines into JSON records. Each worker opens one
// analyzer in Setup and reuses it for every bundle; Teardown closes it.
type scoreFn struct {
	Model    string       `json:"model"`
	StoreDir string       `json:"store_dir"`
	ORTLib   string       `json:"ort_lib"`
	Format   int          `json:"format"`
	Layer    int          `json:"layer"`
	Threads  int          `json:"threads"`
	Options  core.Options `json:"options"`

	model *store.Model
	sess  *core.Session
	layer int
}

// Setup opens the model and the analyzer (converting a .gguf model into
// the worker's store first if needed).
func (f *scoreFn) Setup(ctx context.Context) error {
	op := &core.Opener{ORTLib: f.ORTLib}
	if f.StoreDir != "" {
		op.Store = &store.Store{Root: f.StoreDir}
	}
	m, err := op.OpenModel(ctx, f.Model)
	if err != nil {
		return fmt.Errorf("lmood-beam worker: open model %s: %w", f.Model, err)
	}
	c := m.Config()
	h, err := core.ResolveLayer(f.Layer, m.Manifest.Name, c.Layers, c.Middle())
	if err != nil {
		m.Close()
		return err
	}
	sess, err := core.NewSession(m, f.Options, []int{h}, f.Threads, core.Hooks{})
	if err != nil {
		m.Close()
		return fmt.Errorf("lmood-beam worker: open analyzer: %w", err)
	}
	f.model, f.sess, f.layer = m, sess, h
	analyzersOpened.Add(1)
	log.Infof(ctx, "lmood-beam worker: analyzer ready (model %s, hidden state %d, setup_id %s)", m.Manifest.Name, h, sess.SetupID(h, nil))
	return nil
}

// ProcessElement scores one input line. A line that cannot be parsed or
// a prompt that cannot be scored becomes an error record, never an error
// of the pipeline.
func (f *scoreFn) ProcessElement(ctx context.Context, line string, emit func(string)) error {
	p, skip, err := core.ParsePromptLine(line, 0, core.InputFormat(f.Format))
	if skip {
		return nil
	}
	var rec core.ScoreRecord
	if err != nil {
		rec = f.errorRecord(core.TextID(line), line, err)
	} else {
		rec = f.score(p)
	}
	b, err := core.MarshalRecord(rec)
	if err != nil {
		b, _ = core.MarshalRecord(f.errorRecord(p.ID, p.Text, err))
	}
	emit(strings.TrimSuffix(string(b), "\n"))
	return nil
}

// score scores p; a panic in the analyzer becomes the prompt's error.
func (f *scoreFn) score(p core.Prompt) (rec core.ScoreRecord) {
	defer func() {
		if r := recover(); r != nil {
			rec = f.errorRecord(p.ID, p.Text, fmt.Errorf("internal error: %v", r))
		}
	}()
	if beforeScore != nil {
		beforeScore(p)
	}
	return f.sess.ScorePrompt(p, f.layer, nil) // workers apply no calibration
}

// errorRecord is the record of a prompt that failed with err, shaped as
// the core shapes failed prompts.
func (f *scoreFn) errorRecord(id json.RawMessage, prompt string, err error) core.ScoreRecord {
	rec := core.NewScoreRecord(prompt, f.sess.Setup(), f.layer, f.sess.Rule(), nil, err)
	rec.ID, rec.SetupID = id, f.sess.SetupID(f.layer, nil)
	return rec
}

// Teardown closes the analyzer and the model.
func (f *scoreFn) Teardown() error {
	if f.sess != nil {
		f.sess.Close()
		f.sess = nil
	}
	if f.model != nil {
		f.model.Close()
		f.model = nil
	}
	return nil
}

// summaryFn combines JSON records into the corpus summary.
type summaryFn struct {
	TopN int `json:"top_n"`
}

// CreateAccumulator starts an empty summary.
func (f *summaryFn) CreateAccumulator() core.CorpusSummary { return core.NewCorpusSummary(f.TopN) }

// AddInput counts one JSON record.
func (f *summaryFn) AddInput(a core.CorpusSummary, line string) (core.CorpusSummary, error) {
	var rec core.ScoreRecord
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		return a, fmt.Errorf("summary: record is not JSON: %w", err)
	}
	a.Add(rec)
	return a, nil
}

// MergeAccumulators merges partial summaries.
func (f *summaryFn) MergeAccumulators(a, b core.CorpusSummary) core.CorpusSummary {
	a.Merge(b)
	return a
}

// ExtractOutput renders the summary as one JSON line.
func (f *summaryFn) ExtractOutput(a core.CorpusSummary) (string, error) {
	b, err := json.Marshal(a.Report())
	return string(b), err
}
