#!/usr/bin/env bash
# Reproducible benchmark of lmood on the default model. Prints a Markdown
# table and, with --update-readme, replaces the block between the
# "bench:start" and "bench:end" markers in README.md with it.
#
#   scripts/bench.sh                  # print the table
#   scripts/bench.sh --update-readme  # also refresh README.md
#   scripts/bench.sh shapes [--update-readme]  # 0.5B-8B shapes (scripts/bench_shapes.sh)
#   scripts/bench.sh peer [--update-readme]    # lmood vs PyTorch (scripts/bench_peer.sh)
#   scripts/bench.sh share [MODEL...]          # weights shared by two processes? (scripts/bench_share.sh)
#
# Needs: Go, network access on first run (lmood setup), /usr/bin/time.
# Run it on an otherwise idle machine: numbers are wall-clock.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  shapes) shift; exec bash scripts/bench_shapes.sh "$@" ;;
  peer) shift; exec bash scripts/bench_peer.sh "$@" ;;
  share) shift; exec bash scripts/bench_share.sh "$@" ;;
esac
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lmood"
out="bench/out"
mkdir -p "$out"

go build -o "$cache/bin/lmood" ./cmd/lmood
"$cache/bin/lmood" setup --quiet >/dev/null
export LMOOD_TEST_GGUF="$cache/downloads/SmolLM2-135M-Instruct.Q4_1.gguf"

# Go benchmarks: conversion, session load, forward throughput, matmul peak,
# scoring, and the naive reference loop.
go test -run '^$' -bench 'Convert|SessionLoad|Forward|MatMulPeak|Score|NaiveLoop' \
  -benchtime 5x -timeout 60m ./internal/analyze/ | tee "$out/bench.txt"

# Peak RSS while scoring the probe prompts (K=32, middle layer).
/usr/bin/time -v "$cache/bin/lmood" score --quiet -f prompts/probes.txt --samples 32 \
  >"$out/score.txt" 2>"$out/time.txt"
rss_kb="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/time.txt")"
wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out/time.txt")"
nprompts="$(grep -cv '^#' prompts/probes.txt)"

metric() { # metric BENCH UNIT -> value
  awk -v b="$1" -v u="$2" '$1 ~ "^Benchmark"b"(-[0-9]+)?$" {for (i=2;i<=NF;i++) if ($i==u) print $(i-1)}' "$out/bench.txt"
}
peak="$( (metric MatMulPeak/n1024 GFLOP/s; metric MatMulPeak/n2048 GFLOP/s) | sort -g | tail -1)"
pct() { awk -v a="$1" -v p="$peak" 'BEGIN {printf "%.0f%%", 100*a/p}'; }
f1() { awk -v a="$1" 'BEGIN {printf "%.1f", a}'; }
f2() { awk -v a="$1" 'BEGIN {printf "%.2f", a}'; }

score_ps="$(metric Score/i8 prompts/s)"; naive_ps="$(metric NaiveLoop prompts/s)"
speedup="$(awk -v a="$score_ps" -v b="$naive_ps" 'BEGIN {printf "%.1f", a/b}')"
score_s="$(awk -v a="$score_ps" 'BEGIN {printf "%.2f", 1/a}')"
f32_s="$(awk -v a="$(metric Score/f32 prompts/s)" 'BEGIN {printf "%.2f", 1/a}')"

table="$(cat <<EOF
Measured by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), onnxruntime 1.24.4, default model (SmolLM2-135M, 30 blocks, width 576).

| what | result |
|---|---|
| conversion (GGUF → store) | $(f1 "$(metric Convert s/convert)") s |
| session load, graph truncated at hidden state 15 | $(f2 "$(metric SessionLoad s/load)") s |
| fp32 matmul peak through onnxruntime (best of 1024³, 2048³) | $(f1 "$peak") GFLOP/s |
| forward, full graph, batch 1 × 32 tokens | $(f1 "$(metric Forward/full/batch1 tokens/s)") tokens/s ($(f1 "$(metric Forward/full/batch1 GFLOP/s)") GFLOP/s, $(pct "$(metric Forward/full/batch1 GFLOP/s)") of peak) |
| forward, full graph, batch 32 × 32 tokens | $(f1 "$(metric Forward/full/batch32 tokens/s)") tokens/s ($(f1 "$(metric Forward/full/batch32 GFLOP/s)") GFLOP/s, $(pct "$(metric Forward/full/batch32 GFLOP/s)") of peak) |
| forward, truncated at 15, batch 1 × 32 tokens | $(f1 "$(metric Forward/mid/batch1 tokens/s)") tokens/s ($(f1 "$(metric Forward/mid/batch1 GFLOP/s)") GFLOP/s, $(pct "$(metric Forward/mid/batch1 GFLOP/s)") of peak) |
| forward, truncated at 15, batch 32 × 32 tokens | $(f1 "$(metric Forward/mid/batch32 tokens/s)") tokens/s ($(f1 "$(metric Forward/mid/batch32 GFLOP/s)") GFLOP/s, $(pct "$(metric Forward/mid/batch32 GFLOP/s)") of peak) |
| \`score\`, 20-token prompt, K=32, hidden state 15, default store (i8) | $score_s s per prompt ($(f1 "$(metric Score/i8 tokens/s)") prompt tokens/s) |
| the same on a float32 store (\`--precision f32\`) | $f32_s s per prompt ($(f1 "$(metric Score/f32 tokens/s)") prompt tokens/s) |
| naive reference loop (K × (clean + nudged), full model + logits, batch 1) | $(f2 "$(awk -v a="$naive_ps" 'BEGIN {print 1/a}')") s per prompt |
| speed-up of batching + truncation (+ i8) over the naive loop (f32) | ${speedup}× |
| peak RSS, \`lmood score -f prompts/probes.txt\` ($nprompts prompts, K=32) | $(awk -v k="$rss_kb" 'BEGIN {printf "%.0f MiB", k/1024}') (wall $wall) |
EOF
)"
echo
echo "$table" | tee "$out/table.md"

if [ "${1:-}" = "--update-readme" ]; then
  awk -v table="$out/table.md" '
    /<!-- bench:start -->/ {print; while ((getline line < table) > 0) print line; skip=1; next}
    /<!-- bench:end -->/ {skip=0}
    !skip {print}' README.md > README.md.tmp && mv README.md.tmp README.md
  echo "README.md updated"
fi
