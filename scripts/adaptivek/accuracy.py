#!/usr/bin/env python3
"""Compare `lmood score --json` runs of one model at MatMulNBits accuracy
levels (same prompts, seed and K): per-prompt and per-token ratio
differences against level 0, and against the spread over K (ratio_std).
Usage: accuracy.py BASE.jsonl OTHER.jsonl... Benchmark helper only."""
import json, sys

def load(p):
    return [json.loads(l) for l in open(p)]

base = load(sys.argv[1])
for path in sys.argv[2:]:
    other = load(path)
    pr, prs, tk, tks = [], [], [], []
    for a, b in zip(base, other):
        assert a["prompt"] == b["prompt"]
        d = abs(b["ratio"] - a["ratio"])
        pr.append(d / a["ratio"]); prs.append(d / a["ratio_std"])
        for ta, tb in zip(a["tokens"], b["tokens"]):
            if ta["ratio"] > 0 and ta["ratio_std"] > 0:
                dt = abs(tb["ratio"] - ta["ratio"])
                tk.append(dt / ta["ratio"]); tks.append(dt / ta["ratio_std"])
    print(f"{path} vs {sys.argv[1]}: prompt |d|/ratio mean {sum(pr)/len(pr):.2e} max {max(pr):.2e}; "
          f"|d|/std over K mean {sum(prs)/len(prs):.3f} max {max(prs):.3f} | tokens ({len(tk)}) |d|/ratio mean {sum(tk)/len(tk):.2e} max {max(tk):.2e}; "
          f"|d|/std mean {sum(tks)/len(tks):.3f} max {max(tks):.3f}")
