#!/usr/bin/env bash
# Do two lmood processes scoring one model share its weights? Run through
# `scripts/bench.sh share [MODEL...]` (default: smollm2-135m).
#
# For onnxruntime's default (kernels prepack weights into buffers of their
# own) and with session.disable_prepacking (LMOOD_ORT_DISABLE_PREPACKING=1),
# two `lmood score` processes score prompts/probes.txt at once, one thread
# each; every 0.5 s the script sums their RSS and PSS
# (/proc/PID/smaps_rollup: PSS charges each shared page half to each) and
# keeps the peaks, and it reads how much of weights.bin each has mapped
# (/proc/PID/smaps). A weight file shared through the page cache shows as
# PSS well below RSS; copied weights show PSS ≈ RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lmood"
out="bench/out/share"
mkdir -p "$out"
export GOCACHE="${GOCACHE:-$(go env GOCACHE)}"
lmood="$cache/bin/lmood"
go build -o "$lmood" ./cmd/lmood
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(smollm2-135m)

kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
mapped() { # kB of weights.bin resident in process $1
  awk '/weights\.bin/ {on=1; next} /^[0-9a-f]+-[0-9a-f]+ / {on=0} on && $1 == "Rss:" {s+=$2} END {print s+0}' "/proc/$1/smaps" 2>/dev/null || echo 0
}

echo "| model | prepacking | session ready (s, each) | peak RSS, sum of 2 | peak PSS, sum of 2 | weights.bin mapped, each | wall |"
echo "|---|---|---|---|---|---|---|"
for m in "${models[@]}"; do
  "$lmood" score --quiet -m "$m" "warm up" >/dev/null # graph built, page cache warm
  for mode in default disabled; do
    env=()
    [ "$mode" = disabled ] && env=(LMOOD_ORT_DISABLE_PREPACKING=1)
    start=$(date +%s.%N)
    pids=()
    for i in 1 2; do
      env "${env[@]}" "$lmood" score -v --threads 1 --samples 32 -m "$m" -f prompts/probes.txt \
        >"$out/$m.$mode.$i.out" 2>"$out/$m.$mode.$i.err" &
      pids+=($!)
    done
    rss=0 pss=0 map1=0 map2=0
    while kill -0 "${pids[0]}" 2>/dev/null || kill -0 "${pids[1]}" 2>/dev/null; do
      r=$(( $(kb "${pids[0]}" Rss) + $(kb "${pids[1]}" Rss) ))
      p=$(( $(kb "${pids[0]}" Pss) + $(kb "${pids[1]}" Pss) ))
      if kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null; then
        [ "$r" -gt "$rss" ] && rss=$r
        [ "$p" -gt "$pss" ] && pss=$p
        a=$(mapped "${pids[0]}"); b=$(mapped "${pids[1]}")
        [ "$a" -gt "$map1" ] && map1=$a
        [ "$b" -gt "$map2" ] && map2=$b
      fi
      sleep 0.5
    done
    wait "${pids[@]}"
    wall=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.0f", e-s}')
    ready=$(grep -hoE 'session ready in [0-9.]+(ms|s)' "$out/$m.$mode".*.err | awk '{print $4}' | paste -sd/ -)
    awk -v m="$m" -v mode="$mode" -v rd="$ready" -v r="$rss" -v p="$pss" -v a="$map1" -v b="$map2" -v w="$wall" \
      'BEGIN {printf "| %s | %s | %s | %.0f MiB | %.0f MiB | %.0f / %.0f MiB | %s s |\n", m, mode, rd, r/1024, p/1024, a/1024, b/1024, w}'
  done
done | tee "$out/table.md"
echo "1-minute load average: $(awk '{print $1}' /proc/loadavg)"
