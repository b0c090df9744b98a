// Command adaptivek measures adaptive K (lmood's --precision-target): for
// each prompt it draws K nudges in adaptive K's rounds, never stopping
// early, and writes the prompt ratio and its spread after every round as
// one JSON line. Because nudge k is the same whatever the rounds, the line
// says what a run with any precision target would have reported and how
// many nudges it would have drawn. A benchmark helper, not part of lmood.
//
//	go run ./scripts/adaptivek -m smollm2-135m -k 64 -f prompts.txt > out.jsonl
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lmood/lmood/internal/analyze"
	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/runtime"
)

type checkpoint struct {
	N        int     `json:"n"`
	Ratio    float64 `json:"ratio"`
	RatioStd float64 `json:"ratio_std"`
}

type line struct {
	Prompt      string       `json:"prompt"`
	Tokens      int          `json:"tokens"`
	Seconds     float64      `json:"seconds"`
	Checkpoints []checkpoint `json:"checkpoints"`
}

func main() {
	model := flag.String("m", core.DefaultModel, "model")
	file := flag.String("f", "", "prompts, one per line")
	k := flag.Int("k", 64, "nudges drawn per prompt")
	threads := flag.Int("threads", 0, "onnxruntime threads")
	flag.Parse()
	if err := run(*model, *file, *k, *threads); err != nil {
		fmt.Fprintln(os.Stderr, "adaptivek:", err)
		os.Exit(1)
	}
}

func run(model, file string, k, threads int) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	op := &core.Opener{}
	m, err := op.OpenModel(context.Background(), model)
	if err != nil {
		return err
	}
	defer m.Close()
	c := m.Config()
	opt := core.DefaultOptions()
	opt.Samples = k
	r, err := opt.Resolve([]int{c.Middle()})
	if err != nil {
		return err
	}
	rule := core.RuleOf(r.Analyze, r.Aggregate)
	var cur []checkpoint
	record := func(res *analyze.Result) {
		s := core.Summarize(res, &res.Layers[0], rule)
		cur = append(cur, checkpoint{N: res.Samples, Ratio: s.Ratio, RatioStd: s.RatioStd})
	}
	r.Analyze.Stop = func(res *analyze.Result) bool { record(res); return false }
	an, err := analyze.New(m, r.Analyze, runtime.SessionOptions{Threads: threads})
	if err != nil {
		return err
	}
	defer an.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, p := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		cur = nil
		start := time.Now()
		res, err := an.Analyze(p)
		if err != nil {
			return fmt.Errorf("%q: %w", p, err)
		}
		record(res)
		b, _ := json.Marshal(line{Prompt: p, Tokens: len(res.Tokens), Seconds: time.Since(start).Seconds(), Checkpoints: cur})
		out.Write(append(b, '\n'))
		out.Flush()
	}
	return nil
}
