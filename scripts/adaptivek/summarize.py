#!/usr/bin/env python3
"""Summarize adaptivek traces: for candidate precision targets (relative:
SE <= t * ratio; absolute: SE <= t), the mean K a run capped at CAP would
use, and how far its scores sit from the K=64 and K=32 values, and whether
the probe/eval pair orderings change. Pairs are lines (0,1), (2,3), ... of
the first NPAIRS*2 prompts. Benchmark helper only."""
import json, math, sys

def load(path):
    return [json.loads(l) for l in open(path)]

def stop(cps, target, rel, cap):
    for c in cps:
        n = c["n"]
        if n > cap:
            break
        se = c["ratio_std"] / math.sqrt(n)
        if n == cap or se <= (target * c["ratio"] if rel else target):
            return c
    return [c for c in cps if c["n"] <= cap][-1]

def at(cps, n):
    return [c for c in cps if c["n"] == n][0]

def main():
    path, npairs = sys.argv[1], int(sys.argv[2])
    rows = load(path)
    ref64 = [at(r["checkpoints"], 64)["ratio"] for r in rows]
    ref32 = [at(r["checkpoints"], 32)["ratio"] for r in rows]
    def order(vals):
        return [vals[2*i+1] > vals[2*i] for i in range(npairs)]
    o64 = order(ref64)
    print(f"{path}: {len(rows)} prompts, {npairs} pairs; K=32 vs K=64: max |d|/ratio "
          f"{max(abs(a-b)/b for a,b in zip(ref32,ref64)):.4f}, mean {sum(abs(a-b)/b for a,b in zip(ref32,ref64))/len(rows):.4f}, "
          f"pair orderings changed {sum(x!=y for x,y in zip(order(ref32),o64))}")
    for rel in (True, False):
        for cap in (32, 64):
            for t in ([0.005, 0.01, 0.015, 0.02, 0.03, 0.05] if rel else [0.002, 0.004, 0.006, 0.01, 0.015, 0.02]):
                got = [stop(r["checkpoints"], t, rel, cap) for r in rows]
                ks = [g["n"] for g in got]
                vals = [g["ratio"] for g in got]
                d64 = [abs(v-b)/b for v, b in zip(vals, ref64)]
                d32 = [abs(v-b)/b for v, b in zip(vals, ref32)]
                ch64 = sum(x != y for x, y in zip(order(vals), o64))
                ch32 = sum(x != y for x, y in zip(order(vals), order(ref32)))
                print(f"{'rel' if rel else 'abs'} t={t:<6} cap={cap}: mean K {sum(ks)/len(ks):5.1f} "
                      f"(K=8: {ks.count(8)}, 16: {ks.count(16)}, 32: {ks.count(32)}, 64: {ks.count(64)}); "
                      f"|d| vs K64 mean {sum(d64)/len(d64):.4f} max {max(d64):.4f}; vs K32 mean {sum(d32)/len(d32):.4f} max {max(d32):.4f}; "
                      f"orderings changed vs K64 {ch64}, vs K32 {ch32}")

main()
