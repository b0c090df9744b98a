#!/usr/bin/env bash
# lmood against a PyTorch implementation of the same algorithm
# (scripts/peer_torch.py: batched and truncated, as lmood runs it) and
# against the algorithm as published (a clean and a nudged full forward pass
# per nudge), on the same prompts and token IDs, equal threads, equal K. Run
# through `scripts/bench.sh peer [--update-readme]`. Not part of CI: the
# PyTorch venv alone is ~7 GB from PyPI (~1 GB from PyTorch's CPU index).
#
# lmood and the batched peer run in alternation, LMOOD_PEER_ROUNDS times
# each, and a prompt's time is its fastest run (the median run is shown
# too): on this shared virtual machine two-thread runs slow down by up to
# 1.8x for seconds to minutes at a time (lmood's int8 graph most: it then
# runs no faster than on one thread; README, "Against PyTorch"), and a
# single run of each side can land in different such periods. One-thread
# runs are steady, hence the second thread count. The published loop
# (minutes) runs once. Run nothing else meanwhile.
#
# Environment:
#   LMOOD_PEER_PYTHON   a python with torch, numpy and gguf (default: a venv
#                       under $XDG_CACHE_HOME/lmood/peer-venv made from
#                       scripts/peer-requirements.txt)
#   LMOOD_PEER_K        nudges per prompt (default 32)
#   LMOOD_PEER_PROMPTS  how many prompts of prompts/probes.txt (default all 20;
#                       about 20 minutes in all at two thread counts)
#   LMOOD_PEER_ROUNDS   alternated runs of lmood and the batched peer (default 5)
#   LMOOD_PEER_MODELS   models (default "smollm2-135m qwen2.5-coder-0.5b")
#   LMOOD_PEER_THREADS  thread counts to compare at, each side the same
#                       (default "2 1": both cores, the default, then one;
#                       the published loop runs at the first only)
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lmood"
out="bench/out/peer"
mkdir -p "$out"
K="${LMOOD_PEER_K:-32}"
N="${LMOOD_PEER_PROMPTS:-20}"
R="${LMOOD_PEER_ROUNDS:-5}"
read -r -a threads <<<"${LMOOD_PEER_THREADS:-2 1}"
lmood="$cache/bin/lmood"
go build -o "$lmood" ./cmd/lmood
"$lmood" setup --quiet >/dev/null
"$lmood" pull --quiet qwen2.5-coder-0.5b >/dev/null

py="${LMOOD_PEER_PYTHON:-}"
if [ -z "$py" ]; then
  venv="$cache/peer-venv"
  want="$(sha256sum scripts/peer-requirements.txt | cut -d' ' -f1)"
  if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    # PyPI's torch wheel (about 7 GB installed, with CUDA libraries it does
    # not use here); where PyTorch's CPU index is reachable,
    # PIP_INDEX_URL=https://download.pytorch.org/whl/cpu
    # PIP_EXTRA_INDEX_URL=https://pypi.org/simple gives a ~1 GB one.
    "$venv/bin/pip" install --quiet -r scripts/peer-requirements.txt
    echo "$want" >"$venv/.requirements.sha256"
  fi
  py="$venv/bin/python"
fi

grep -v '^#' prompts/probes.txt | grep -v '^$' | head -n "$N" >"$out/prompts.txt"
# lmood's input: the first prompt once more in front, its warm-up (the
# peer warms up before timing too; lmood's first forward pass in a process
# takes about 25 ms longer than the same pass again), left out of the times
# and records.
{ head -n 1 "$out/prompts.txt"; cat "$out/prompts.txt"; } >"$out/prompts-warm.txt"
declare -A gguf=(
  [smollm2-135m]="$cache/downloads/SmolLM2-135M-Instruct.Q4_1.gguf"
  [qwen2.5-coder-0.5b]="$cache/downloads/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
)
rows=()
for m in ${LMOOD_PEER_MODELS:-smollm2-135m qwen2.5-coder-0.5b}; do
  echo "== $m, load $(awk '{print $1}' /proc/loadavg)" >&2
  "$lmood" score --quiet -m "$m" "warm up" >/dev/null # graph built
  rm -f "$out/$m".*
  for th in "${threads[@]}"; do
    for ((r = 1; r <= R; r++)); do
      "$lmood" score -v --threads "$th" --samples "$K" --aggregate flat --json -m "$m" -f "$out/prompts-warm.txt" \
        2>"$out/$m.t$th.lmood.err.$r" | tail -n +2 >"$out/$m.lmood.json"
      "$py" scripts/peer_torch.py --mode batched --gguf "${gguf[$m]}" --ids "$out/$m.lmood.json" --samples "$K" --threads "$th" \
        >"$out/$m.t$th.peer.json.$r" 2>"$out/$m.peer.err"
    done
  done
  "$py" scripts/peer_torch.py --mode published --gguf "${gguf[$m]}" --ids "$out/$m.lmood.json" --samples "$K" --threads "${threads[0]}" \
    >"$out/$m.published.json" 2>"$out/$m.published.err"
  prec="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["precision"])' "$(readlink -f "$cache/models/$m")/manifest.json" 2>/dev/null || echo "?")"
  for th in "${threads[@]}"; do
    rows+=("$(python3 - "$out" "$m" "$prec" "$K" "$R" "$th" "${threads[0]}" <<'PY'
import json, math, re, statistics, sys
out, m, prec, K, R, th, th0 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
def seconds(d):  # a Go duration: 405ms, 1.872s, 1m2.5s
    return sum(float(v) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6}[u] for v, u in re.findall(r"([0-9.]+)(h|ms|µs|m|s)", d))
lm = [json.loads(l) for l in open(f"{out}/{m}.lmood.json")]
lt = [[seconds(x) for x in re.findall(r"token\(s\) analyzed in (\S+)", open(f"{out}/{m}.t{th}.lmood.err.{r}").read())][1:] for r in range(1, R + 1)]  # [0]: warm-up
runs = [[json.loads(l) for l in open(f"{out}/{m}.t{th}.peer.json.{r}")] for r in range(1, R + 1)]
# A prompt's time: its fastest run (and its median run) over the rounds;
# a row: the mean over the prompts.
best = lambda rows: statistics.mean(min(col) for col in zip(*rows))
median = lambda rows: statistics.mean(statistics.median(col) for col in zip(*rows))
pt = [[p["batched_s"] for p in run] for run in runs]
tl, tb, ml, mb = best(lt), best(pt), median(lt), median(pt)
# Same algorithm, different noise: the prompt ratios' means over K must
# agree within their standard errors (z = difference / its standard error).
zs = lambda side: max(abs(l["ratio"] - p[side]["ratio"]) / math.sqrt((l["ratio_std"] ** 2 + p[side]["ratio_std"] ** 2) / K + 1e-30) for l, p in zip(lm, side_rows[side]))
side_rows = {"batched": runs[0]}
pubcell, zp = "—", "—"
if th == th0:
    pub = [json.loads(l) for l in open(f"{out}/{m}.published.json")]
    side_rows["published"] = pub
    tp = statistics.mean(p["published_s"] for p in pub)
    pubcell, zp = f"{tp:.2f} s, {tp/tl:.1f}×", f"{zs('published'):.1f}"
ntok = [len(l["tokens"]) for l in lm]
print(f"| {m} ({prec}) | {th} | {len(lm)} prompts, {min(ntok)}–{max(ntok)} tokens, K={K} | {tl:.3f} s ({ml:.3f} s) | {tb:.3f} s ({mb:.3f} s) | **{tb/tl:.1f}×** ({mb/ml:.1f}×) | {pubcell} | {zs('batched'):.1f} / {zp} |")
PY
)")
  done
done
table="$(
  echo "Measured by \`scripts/bench.sh peer\` on $(date -u +%Y-%m-%d), $(nproc) cores, the same number of threads on each side (lmood's default is one per core), hidden state = the middle one, per-token noise σ = 0.01, prompt ratio over the flattened tokens 1..T−1 (\`--aggregate flat\`); 1-minute load average $(awk '{print $1}' /proc/loadavg) at the end (the benchmark's own threads count toward it: about 2 means nothing else ran). Times are per prompt, model loading excluded. lmood and the batched peer ran $R times each, in alternation: a prompt's time is its fastest run (in brackets: its median run), a row gives the mean over the prompts. The published loop ran once, at ${threads[0]} threads. × = how many times lmood's time."
  echo
  echo "| model (lmood precision) | threads | prompts | lmood | PyTorch, batched + truncated | lmood's speed-up over it | as published (clean + nudged full forward per nudge) | agreement: max \|Δratio\| / SE, batched / published |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
)"
echo
echo "$table" | tee "$out/table.md"
if [ "${1:-}" = "--update-readme" ]; then
  awk -v table="$out/table.md" '
    /<!-- bench-peer:start -->/ {print; while ((getline line < table) > 0) print line; skip=1; next}
    /<!-- bench-peer:end -->/ {skip=0}
    !skip {print}' README.md > README.md.tmp && mv README.md.tmp README.md
  echo "README.md updated"
fi
