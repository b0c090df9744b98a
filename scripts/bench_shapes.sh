#!/usr/bin/env bash
# Benchmark of lmood at realistic model sizes: synthetic GGUFs with random
# weights in llama.cpp's Q4_K_M mix at the shapes of Qwen2.5-0.5B/1.5B,
# Llama-3.2-3B and Llama-3.1-8B (internal/testutil/cmd/mkgguf), plus the
# real SmolLM2-135M and Qwen2.5-Coder-0.5B. Run through `scripts/bench.sh
# shapes [--update-readme]`.
#
# Per model and precision: conversion time and peak RSS, store size against
# the GGUF, session open time, peak RSS and wall time of `lmood score` on a
# 20-token prompt at K=8, forward tokens/s of the analysis graph (truncated
# at the middle hidden state) at batch 1 and 33, 2 threads. float32 is
# measured next to `--precision q` where it fits (LMOOD_BENCH_F32, default:
# the models under 1B parameters).
#
# Environment:
#   LMOOD_BENCH_GGUF_DIR  where synthetic GGUFs are written (default /tmp/lmood-bench-gguf; ~9 GB)
#   LMOOD_BENCH_SHAPES    shapes to run (default: all four)
#   LMOOD_BENCH_F32       models also measured at f32 (default "smollm2 qwen-coder-0.5b qwen-0.5b")
#   LMOOD_BENCH_MODELS    models to (re)measure (default: smollm2 qwen-coder-0.5b and the shapes);
#                         rows of other models measured before are kept in the table
# Models are converted into a scratch store (removed after each model), so
# ~15 GB of free disk suffice for the 8B shape. Wall-clock numbers: note
# the machine's load (printed with the table).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lmood"
out="bench/out/shapes"
gdir="${LMOOD_BENCH_GGUF_DIR:-/tmp/lmood-bench-gguf}"
shapes="${LMOOD_BENCH_SHAPES:-qwen-0.5b qwen-1.5b llama-3b llama-8b}"
f32models="${LMOOD_BENCH_F32:-smollm2 qwen-coder-0.5b qwen-0.5b}"
prompt="The old lighthouse keeper walked down to the harbour every single morning to count all of the fishing boats."
models="${LMOOD_BENCH_MODELS:-smollm2 qwen-coder-0.5b $shapes}"
mkdir -p "$out/rows" "$gdir"
# The scratch store below changes XDG_CACHE_HOME: keep Go's build cache.
export GOCACHE="${GOCACHE:-$(go env GOCACHE)}"

lmood="$cache/bin/lmood"
go build -o "$lmood" ./cmd/lmood
go build -o "$cache/bin/mkgguf" ./internal/testutil/cmd/mkgguf
"$lmood" setup --quiet >/dev/null
"$lmood" pull --quiet qwen2.5-coder-0.5b >/dev/null
export LMOOD_ORT_LIB="${LMOOD_ORT_LIB:-$(ls "$cache"/runtime/onnxruntime-*/libonnxruntime.so* | head -1)}"

# llama.cpp's vocabularies (Llama 3 and Qwen2 tokenizers) from the pinned
# llama-cpp-python source archive, as scripts/test.sh extracts them.
lcpp_url="https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz"
lcpp_sha="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
lcpp_tar="$cache/downloads/llama_cpp_python-0.3.36.tar.gz"
vocabs="$cache/llamacpp-vocabs-0.3.36"
if [ "$(cat "$vocabs/.sha256" 2>/dev/null)" != "$lcpp_sha" ]; then
  if [ ! -f "$lcpp_tar" ] || ! echo "$lcpp_sha  $lcpp_tar" | sha256sum -c --status; then
    curl -fsSL --retry 3 -o "$lcpp_tar.part" "$lcpp_url"
    echo "$lcpp_sha  $lcpp_tar.part" | sha256sum -c --quiet
    mv "$lcpp_tar.part" "$lcpp_tar"
  fi
  rm -rf "$vocabs" && mkdir -p "$vocabs"
  tar -xzf "$lcpp_tar" -C "$vocabs" --strip-components=4 --wildcards \
    'llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-*'
  echo "$lcpp_sha" > "$vocabs/.sha256"
fi
# shellcheck disable=SC2086
"$cache/bin/mkgguf" -out "$gdir" -vocab-dir "$vocabs" $shapes

scratch="$(mktemp -d "${TMPDIR:-/tmp}/lmood-bench-store.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
load() { awk '{print $1}' /proc/loadavg; }
tv() { awk -F': ' -v k="$2" '$0 ~ k {print $2}' "$1"; } # tv TIMEFILE KEY

# measure NAME GGUF PRECISION: one row, in $out/rows/NAME.PRECISION.tsv
measure() {
  local name="$1" gguf="$2" prec="$3" m="bench-$1-$3"
  local t="$out/$m"
  rm -f "$out/rows/$1.$3.tsv"
  echo "== $name ($prec), load $(load)" >&2
  XDG_CACHE_HOME="$scratch" /usr/bin/time -v "$lmood" import --quiet --force --name "$m" --precision "$prec" "$gguf" \
    >/dev/null 2>"$t.import.time"
  local dir; dir="$(readlink -f "$scratch/lmood/models/$m")"
  local wbytes; wbytes="$(stat -c %s "$dir/weights.bin")"
  XDG_CACHE_HOME="$scratch" /usr/bin/time -v "$lmood" score --quiet --json --threads 2 --samples 8 -m "$m" "$prompt" \
    >"$t.score.json" 2>"$t.score.time"
  local ntok; ntok="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["tokens"]))' "$t.score.json" 2>/dev/null || echo "?")"
  local bt=3x
  [ "$(stat -c %s "$gguf")" -gt 3000000000 ] && bt=1x
  XDG_CACHE_HOME="$scratch" LMOOD_BENCH_MODEL="$m" go test -run '^$' -bench 'ShapeSessionOpen|ShapeForward' \
    -benchtime "$bt" -timeout 120m ./internal/analyze/ >"$t.bench.txt"
  metric() { awk -v b="$1" -v u="$2" '$1 ~ "^Benchmark"b"(-[0-9]+)?$" {for (i=2;i<=NF;i++) if ($i==u) print $(i-1)}' "$t.bench.txt"; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$prec" "$(stat -c %s "$gguf")" \
    "$(tv "$t.import.time" 'Elapsed \\(wall clock\\)')" "$(tv "$t.import.time" 'Maximum resident')" "$wbytes" \
    "$(metric ShapeSessionOpen s/open)" "$ntok" "$(tv "$t.score.time" 'Maximum resident')" "$(tv "$t.score.time" 'Elapsed \\(wall clock\\)')" \
    "$(metric ShapeForward/batch1 tokens/s)" "$(metric ShapeForward/batch33 tokens/s)" "$(load)" >"$out/rows/$1.$3.tsv"
  rm -rf "$dir" "$scratch/lmood/models/$m"
}

declare -A gguf=(
  [smollm2]="$cache/downloads/SmolLM2-135M-Instruct.Q4_1.gguf"
  [qwen-coder-0.5b]="$cache/downloads/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
)
for s in $shapes; do gguf[$s]="$gdir/$s.gguf"; done
for name in $models; do
  measure "$name" "${gguf[$name]}" q
  case " $f32models " in *" $name "*) measure "$name" "${gguf[$name]}" f32 ;; esac
done

label() {
  case "$1" in
    smollm2) echo "SmolLM2-135M (real, Q4_1)" ;;
    qwen-coder-0.5b) echo "Qwen2.5-Coder-0.5B (real, Q4_K_M)" ;;
    *) echo "$1 (synthetic Q4_K_M)" ;;
  esac
}
table="$(
  echo "Measured by \`scripts/bench.sh shapes\` on $(date -u +%Y-%m-%d), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '{printf "%.0f", $2/1048576}' <(grep MemTotal /proc/meminfo)) GiB, 2 threads; 1-minute load average at each row's end in the last column (other jobs shared the machine)."
  echo
  echo "| model | precision | GGUF | convert: wall, peak RSS | store (× GGUF) | session open | score 20-token prompt, K=8: peak RSS, wall | forward tokens/s, batch 1 / 33 | load |"
  echo "|---|---|---|---|---|---|---|---|---|"
  while IFS=$'\t' read -r name prec gb cwall crss wb sopen ntok srss swall b1 b33 ld; do
    awk -v l="$(label "$name")" -v p="$prec" -v gb="$gb" -v cw="$cwall" -v cr="$crss" -v wb="$wb" -v so="$sopen" \
        -v nt="$ntok" -v sr="$srss" -v sw="$swall" -v b1="$b1" -v b33="$b33" -v ld="$ld" 'BEGIN {
      printf "| %s | %s | %.2f GB | %s, %.2f GiB | %.2f GB (%.2f×) | %.2f s | %.2f GiB, %s (%s tokens) | %.1f / %.1f | %s |\n",
        l, p, gb/1e9, cw, cr/1048576, wb/1e9, wb/gb, so, sr/1048576, sw, nt, b1, b33, ld }'
  done < <(for n in smollm2 qwen-coder-0.5b qwen-0.5b qwen-1.5b llama-3b llama-8b; do
             cat "$out/rows/$n.q.tsv" "$out/rows/$n.f32.tsv" 2>/dev/null || true; done)
)"
echo
echo "$table" | tee "$out/table.md"

if [ "${1:-}" = "--update-readme" ]; then
  awk -v table="$out/table.md" '
    /<!-- bench-shapes:start -->/ {print; while ((getline line < table) > 0) print line; skip=1; next}
    /<!-- bench-shapes:end -->/ {skip=0}
    !skip {print}' README.md > README.md.tmp && mv README.md.tmp README.md
  echo "README.md updated"
fi
