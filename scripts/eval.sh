#!/usr/bin/env bash
# The evaluations behind the README's "Does it work?" section, on three real
# models. Long: about 1.5 hours on 2 idle cores (Qwen2.5-Coder-0.5B is most
# of it). Writes JSON Lines to docs/eval/ (one file per run) and prints the
# commands it runs. The tests run a CI-sized version of each (cmd/lmood
# TestEvalRealModel, internal/eval's token-level real-model test).
#
#   scripts/eval.sh              all runs
#   scripts/eval.sh smollm2      only the SmolLM2-135M runs
#   scripts/eval.sh qwen         only the Qwen2.5-Coder-0.5B runs
#   scripts/eval.sh qwen-sites   only the Qwen site comparison
#   scripts/eval.sh selfcal      only the self-generated calibration run
#   scripts/eval.sh gemma        only the Gemma 3 270M run (a third model, another family)
#   scripts/eval.sh precision    i8 and q against f32 stores (SmolLM2, Qwen), the same sets
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
out=docs/eval
mkdir -p "$out"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lmood"
lmood="$cache/bin/lmood"
go build -o "$lmood" ./cmd/lmood
"$lmood" setup --quiet
sets=(--in prompts/eval/plain.txt --corrupt all --pairs prompts/eval/anomaly.tsv -k 8)

run() {
  local name="$1"; shift
  echo "+ lmood $*" >&2
  local start=$SECONDS
  "$lmood" "$@" --json > "$out/$name.jsonl"
  echo "  $name: $((SECONDS - start)) s, $(wc -l < "$out/$name.jsonl") records" >&2
}

if [ "$which" = all ] || [ "$which" = smollm2 ]; then
  # Prompt level: every aggregation at five depths (the default model: 30 blocks).
  run smollm2-prompt eval "${sets[@]}" --limit 120 --layers 5,10,15,20,25 --aggregate all
  # Token level (one-span edits) and the combined detectors, default aggregation.
  run smollm2-spans eval "${sets[@]}" --limit 60 --layers 10,15 --spans all
  # Which site separates best (small: 24 sentences per family, middle depth).
  for site in resid norm attn mlp; do
    run "smollm2-site-$site" eval "${sets[@]}" --limit 24 --layers 15 --site "$site"
  done
fi
if [ "$which" = all ] || [ "$which" = selfcal ]; then
  # p-values from the model's own text instead of cross-fitting: calibrate
  # on 120 self-generated passages of 24 tokens (the analysis of the eval
  # below: K=8, hidden states 10 and 15), then one eval that reports the
  # combinations both ways on the same analyses (--cross-fit-too). Small:
  # 12 sentences of plain.txt and 12 of numbers.txt (for the digit edit)
  # per family.
  echo "+ lmood calibrate -k 8 --layer 10,15 --passages 120 --tokens 24" >&2
  "$lmood" calibrate -k 8 --layer 10,15 --passages 120 --tokens 24 >&2
  run smollm2-selfcal eval --in prompts/eval/plain.txt --in prompts/eval/numbers.txt --corrupt all \
    --pairs prompts/eval/anomaly.tsv -k 8 --limit 12 --layers 10,15 --spans all --cross-fit-too
  # Which token class to bucket per-token calibration values by (the same
  # passages, read from the calibration's cache; README "Token classes").
  echo "+ go run ./scripts/calibclass" >&2
  rm -f "$cache/calibclass.json"
  go run ./scripts/calibclass -passages 120 -tokens 24 -sentences 12 -cache "$cache/calibclass.json" > "$out/smollm2-calibclass.txt"
fi
if [ "$which" = all ] || [ "$which" = qwen ]; then
  "$lmood" pull qwen2.5-coder-0.5b --quiet
  # Qwen2.5-Coder-0.5B: 24 blocks, so the same relative depths.
  run qwen-prompt eval -m qwen2.5-coder-0.5b "${sets[@]}" --limit 60 --layers 4,8,12,16,20 --aggregate all
  run qwen-spans eval -m qwen2.5-coder-0.5b "${sets[@]}" --limit 40 --layers 4,12 --spans all
fi
if [ "$which" = all ] || [ "$which" = qwen ] || [ "$which" = qwen-sites ]; then
  "$lmood" pull qwen2.5-coder-0.5b --quiet
  # Which site separates best on Qwen (24 sentences per family, middle depth).
  for site in resid norm attn mlp; do
    run "qwen-site-$site" eval -m qwen2.5-coder-0.5b "${sets[@]}" --limit 24 --layers 12 --site "$site"
  done
fi
if [ "$which" = all ] || [ "$which" = gemma ]; then
  "$lmood" pull gemma3-270m --quiet
  # Gemma 3 270M: 18 blocks; every aggregation at the middle depth and the
  # depths of the other runs, small (24 sentences per family).
  run gemma3-prompt eval -m gemma3-270m "${sets[@]}" --limit 24 --layers 3,6,9,12,15 --aggregate all
fi
if [ "$which" = all ] || [ "$which" = precision ]; then
  # i8 (the default on CPUs with 8-bit dot products) and q (block-quantized,
  # MatMulNBits at accuracy level 4) against f32 on the same sets and
  # nudges: both models imported each way under their own names (README
  # "Precision": the AUROCs of the runs side by side).
  "$lmood" pull qwen2.5-coder-0.5b --quiet
  for m in smollm2-135m:15 qwen2.5-coder-0.5b:12; do
    name="${m%%:*}" layer="${m##*:}"
    gguf="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["source"]["gguf"])' "$cache/models/$name/manifest.json")"
    for prec in f32 i8 q; do
      "$lmood" import --quiet --name "$name-$prec" --precision "$prec" "$gguf" >/dev/null
      run "$name-precision-$prec" eval -m "$name-$prec" "${sets[@]}" --limit 60 --layers "$layer"
    done
  done
fi
