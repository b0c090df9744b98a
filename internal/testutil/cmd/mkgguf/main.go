// Command mkgguf writes synthetic llama-family GGUF files at the shapes of
// real models with random weights in llama.cpp's Q4_K_M mix (see package
// shapes), for scripts/bench.sh. It is a benchmark helper, not part of
// lmood.
//
//	go run ./internal/testutil/cmd/mkgguf -out DIR [-vocab-dir DIR] [SHAPE...]
//
// With no shape it writes all of them. A file that exists already is kept.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/testutil/shapes"
)

func main() {
	out := flag.String("out", "", "directory to write SHAPE.gguf files into (required)")
	vocabDir := flag.String("vocab-dir", "", "directory of llama.cpp's ggml-vocab-*.gguf files: qwen2 shapes get ggml-vocab-qwen2.gguf's tokenizer, llama shapes ggml-vocab-llama-bpe.gguf's")
	seed := flag.Uint64("seed", 1, "random seed")
	list := flag.Bool("list", false, "list the shapes and exit")
	flag.Parse()
	if *list {
		for _, s := range shapes.Shapes {
			fmt.Printf("%s\t%s\t%d layers\td=%d\tffn=%d\theads=%d/%d\tvocab=%d\ttied=%v\n", s.Name, s.Like, s.Layers, s.Dim, s.FFN, s.Heads, s.KVHeads, s.Vocab, s.Tied)
		}
		return
	}
	if *out == "" {
		fmt.Fprintln(os.Stderr, "mkgguf: -out DIR is required")
		os.Exit(2)
	}
	names := flag.Args()
	if len(names) == 0 {
		names = shapes.Names()
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "mkgguf:", err)
		os.Exit(1)
	}
	for _, n := range names {
		s, ok := shapes.Lookup(n)
		if !ok {
			fmt.Fprintf(os.Stderr, "mkgguf: unknown shape %q (known: %v)\n", n, shapes.Names())
			os.Exit(2)
		}
		path := filepath.Join(*out, n+".gguf")
		if _, err := os.Stat(path); err == nil {
			fmt.Println(path, "(exists)")
			continue
		}
		opt := shapes.Options{Seed: *seed}
		if *vocabDir != "" {
			vf := "ggml-vocab-llama-bpe.gguf"
			if s.Arch == "qwen2" {
				vf = "ggml-vocab-qwen2.gguf"
			}
			f, err := gguf.Open(filepath.Join(*vocabDir, vf))
			if err != nil {
				fmt.Fprintln(os.Stderr, "mkgguf:", err)
				os.Exit(1)
			}
			opt.Vocab = f
			defer f.Close()
		}
		start := time.Now()
		if err := shapes.Write(path, s, opt); err != nil {
			fmt.Fprintln(os.Stderr, "mkgguf:", err)
			os.Exit(1)
		}
		fi, _ := os.Stat(path)
		fmt.Printf("%s %.2f GB in %.1f s\n", path, float64(fi.Size())/1e9, time.Since(start).Seconds())
	}
}
