// Command lmood-beam scores a corpus with lmood on an Apache Beam runner:
// locally on the embedded Prism runner, or on Dataflow, Flink or Spark.
// It reads prompts as text lines or JSON Lines from any Beam filesystem,
// scores each with the same core and options as `lmood score`, and writes
// records identical to `lmood score --json`, plus a summary. See README,
// "Scoring a corpus".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/gcs"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/s3"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/lmood/lmood/internal/drift"
	core "github.com/lmood/lmood/internal/lmood"
)

// registerFlags defines the pipeline's flags on fs; the analysis flags
// mirror `lmood score`'s.
func registerFlags(fs *flag.FlagSet, c *config) {
	d := core.DefaultOptions()
	c.Options = d
	fs.StringVar(&c.Input, "input", "", "prompts: a file or glob on any Beam filesystem (local, gs://, s3://)")
	fs.StringVar(&c.Output, "output", "", "JSON Lines records, one per prompt, as `lmood score --json` writes them")
	fs.StringVar(&c.Summary, "summary", "", "also write a JSON summary here (counts, OOD quantiles per layer, the most unusual prompts)")
	fs.StringVar(&c.Format, "input-format", "auto", "text (one prompt per line), jsonl ({\"id\": ..., \"text\": ...}) or auto (jsonl for .jsonl/.ndjson/.json)")
	fs.IntVar(&c.TopN, "top", 20, "most unusual prompts in the summary")
	fs.StringVar(&c.Model, "model", core.DefaultModel, "model on the workers: a store name or a path to a .gguf file")
	fs.StringVar(&c.StoreDir, "models", "", "model store directory on the workers (default: lmood's cache, $XDG_CACHE_HOME/lmood/models)")
	fs.StringVar(&c.ORTLib, "ort-lib", "", "libonnxruntime.so on the workers (default $LMOOD_ORT_LIB, else the copy 'lmood setup' installs)")
	fs.IntVar(&c.Threads, "threads", 1, "onnxruntime intra-op threads per worker (0 = one per core)")
	fs.IntVar(&c.Layer, "layer", -1, "hidden-state index to measure (default the middle)")
	fs.IntVar(&c.Options.Samples, "samples", d.Samples, "nudges per prompt (K)")
	fs.Float64Var(&c.Options.Sigma, "sigma", d.Sigma, "relative nudge size")
	fs.Uint64Var(&c.Options.Seed, "seed", d.Seed, "noise seed")
	fs.StringVar(&c.Options.Noise, "noise", d.Noise, "noise scale: per-token or whole")
	fs.StringVar(&c.Options.Direction, "direction", d.Direction, "OOD score orientation: pinch or expand")
	fs.BoolVar(&c.Options.Isolate, "isolate", false, "nudge one token at a time")
	fs.BoolVar(&c.Options.IncludeFirst, "include-first", false, "count position 0 in prompt-level ratios")
	fs.IntVar(&c.Options.MaxTokens, "max-tokens", d.MaxTokens, "refuse prompts longer than this many tokens (0 = the model's context length)")
	fs.StringVar(&c.Options.Aggregate, "aggregate", d.Aggregate, "prompt-level aggregation: "+strings.Join(drift.AggregationNames(), ", "))
	fs.BoolVar(&c.Options.Surprisal, "surprisal", false, "also report the model's surprisal, entropy and max-softmax")
	fs.Float64Var(&c.Options.PrecisionTarget, "precision-target", d.PrecisionTarget, "adaptive K: stop once the prompt ratio's standard error is at most this fraction of it, or at --samples (0 = always --samples)")
	fs.IntVar(&c.Options.MatmulAccuracy, "matmul-accuracy", d.MatmulAccuracy, "MatMulNBits accuracy level of a --precision q model: 0 float32, 4 int8 activations")
	fs.IntVar(&c.Options.BatchMemory, "batch-memory", 0, "MiB one forward batch may take on a worker (0 = the default)")
}

func main() {
	var c config
	registerFlags(flag.CommandLine, &c)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: lmood-beam --input PROMPTS --output RECORDS.jsonl [--summary SUMMARY.json] [analysis flags] --runner=prism|dataflow|flink|...\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	beam.Init()
	p, err := buildPipeline(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lmood-beam:", err)
		os.Exit(2)
	}
	if err := beamx.Run(context.Background(), p); err != nil {
		fmt.Fprintln(os.Stderr, "lmood-beam:", err)
		os.Exit(1)
	}
}
