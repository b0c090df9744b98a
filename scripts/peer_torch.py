#!/usr/bin/env python3
"""PyTorch peer of lmood's drift measurement, for scripts/bench.sh peer.

A benchmark helper only (lmood never needs Python). It reads a llama-family
GGUF (architectures llama and qwen2) with the PyPI `gguf` package,
dequantizes every weight to float32 torch tensors, and measures the drift
ratio of each prompt the way lmood does by default:

  * hidden state 0 = the token embedding rows; per-token noise: row t
    becomes e_t + sigma*|e_t|*z, rescaled to |e_t| (z standard normal);
  * the ratio is angle(h, h') / angle(e, e') in degrees, per token and,
    for the prompt, over the flattened rows 1..T-1 (position 0 excluded,
    lmood's `--aggregate flat`), averaged over K nudges (mean and std).

Two implementations of the same algorithm, timed per prompt (model loading
excluded):

  batched    the clean copy and the K nudged copies in one batch, forward
             only up to the measured hidden state (what lmood does);
  published  the algorithm as published: for each nudge, one clean and one
             nudged full forward pass (every block and the logits), batch 1.

Token IDs come from lmood's own `score --json` output (--ids), so both
tokenize identically. Output: one JSON object per prompt on stdout.
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.parts[f.data[0]]
    if f.types and f.types[0].name == "STRING":
        return bytes(v).decode()
    return v.tolist()[0]


class Model:
    """float32 weights of a llama/qwen2 GGUF and its forward pass."""

    def __init__(self, path):
        r = GGUFReader(path)
        self.arch = field(r, "general.architecture")
        if self.arch not in ("llama", "qwen2"):
            raise SystemExit(f"peer_torch: architecture {self.arch!r} is not llama or qwen2")
        a = self.arch
        self.layers = int(field(r, f"{a}.block_count"))
        self.heads = int(field(r, f"{a}.attention.head_count"))
        self.kv = int(field(r, f"{a}.attention.head_count_kv", self.heads))
        self.eps = float(field(r, f"{a}.attention.layer_norm_rms_epsilon", 1e-5))
        self.theta = float(field(r, f"{a}.rope.freq_base", 10000.0))
        self.w = {}
        for t in r.tensors:
            v = np.array(dequantize(t.data, t.tensor_type), dtype=np.float32)  # a writable copy
            self.w[t.name] = torch.from_numpy(np.ascontiguousarray(v).reshape([int(d) for d in reversed(t.shape.tolist())]))
        self.dim = self.w["token_embd.weight"].shape[1]
        self.hd = self.dim // self.heads
        # llama GGUFs store q/k rows so that rotary pairs are interleaved
        # (2j, 2j+1); qwen2 GGUFs keep Hugging Face's rotate-half order.
        self.interleaved = self.arch == "llama"
        inv = self.theta ** (-torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd)
        self.inv_freq = inv

    def rope(self, x):  # x [B, heads, T, hd]
        T = x.shape[2]
        ang = torch.arange(T, dtype=torch.float64)[:, None] * self.inv_freq[None, :]
        cos, sin = ang.cos().float(), ang.sin().float()
        if self.interleaved:
            x0, x1 = x[..., 0::2], x[..., 1::2]
            out = torch.empty_like(x)
            out[..., 0::2] = x0 * cos - x1 * sin
            out[..., 1::2] = x0 * sin + x1 * cos
            return out
        h = self.hd // 2
        x0, x1 = x[..., :h], x[..., h:]
        return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)

    def norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def lin(self, x, name):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        return y + b if b is not None else y

    def block(self, h, i):
        p = f"blk.{i}."
        B, T, _ = h.shape
        x = self.norm(h, self.w[p + "attn_norm.weight"])
        q = self.lin(x, p + "attn_q").view(B, T, self.heads, self.hd).transpose(1, 2)
        k = self.lin(x, p + "attn_k").view(B, T, self.kv, self.hd).transpose(1, 2)
        v = self.lin(x, p + "attn_v").view(B, T, self.kv, self.hd).transpose(1, 2)
        q, k = self.rope(q), self.rope(k)
        g = self.heads // self.kv
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        ctx = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + self.lin(ctx.transpose(1, 2).reshape(B, T, self.dim), p + "attn_output")
        x = self.norm(h, self.w[p + "ffn_norm.weight"])
        m = torch.nn.functional.silu(self.lin(x, p + "ffn_gate")) * self.lin(x, p + "ffn_up")
        return h + self.lin(m, p + "ffn_down")

    def forward(self, e, depth, logits=False):
        """Residual stream after block `depth` (and the logits if asked)."""
        h = e
        hidden = e if depth == 0 else None
        for i in range(self.layers if logits else depth):
            h = self.block(h, i)
            if i + 1 == depth:
                hidden = h
        if logits:
            out = self.w.get("output.weight", self.w["token_embd.weight"])
            lg = self.norm(h, self.w["output_norm.weight"]) @ out.T
            return hidden, lg
        return hidden


def nudge(e, k, sigma, gen):
    """k per-token nudged copies of e [T, d], each row rescaled to |e_t|."""
    n = e.norm(dim=-1, keepdim=True)
    z = torch.randn((k,) + tuple(e.shape), generator=gen, dtype=torch.float32)
    x = e[None] + sigma * n[None] * z
    return x * (n[None] / x.norm(dim=-1, keepdim=True))


def angle(a, b):
    """Angle in degrees between a and b along the last axis (float64)."""
    a, b = a.double(), b.double()
    c = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    return torch.rad2deg(torch.arccos(c.clamp(-1, 1)))


def ratios(e, en, h, hn):
    """Per-token [K, T] and prompt [K] (rows 1..T-1 flattened) ratios."""
    tok = angle(h[None], hn) / angle(e[None], en)
    K = en.shape[0]
    flat = angle(h[1:].reshape(1, -1), hn[:, 1:].reshape(K, -1)) / angle(e[1:].reshape(1, -1), en[:, 1:].reshape(K, -1))
    return tok, flat


def summary(tok, flat):
    return {
        "ratio": flat.mean().item(), "ratio_std": flat.std(unbiased=False).item(),
        "token_ratios": tok.mean(0).tolist(), "token_ratio_stds": tok.std(0, unbiased=False).tolist(),
    }


@torch.inference_mode()
def run_batched(m, ids, depth, K, sigma, gen):
    e = m.w["token_embd.weight"][ids]
    en = nudge(e, K, sigma, gen)
    h = m.forward(torch.cat([e[None], en]), depth)
    return ratios(e, en, h[0], h[1:])


@torch.inference_mode()
def run_published(m, ids, depth, K, sigma, gen):
    e = m.w["token_embd.weight"][ids]
    toks, flats = [], []
    for _ in range(K):
        h, _ = m.forward(e[None], depth, logits=True)
        en = nudge(e, 1, sigma, gen)
        hn, _ = m.forward(en, depth, logits=True)
        t, f = ratios(e, en, h[0], hn)
        toks.append(t)
        flats.append(f)
    return torch.cat(toks), torch.cat(flats)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--ids", required=True, help="lmood score --json output (JSON Lines) to take prompts and token IDs from")
    ap.add_argument("--samples", "-k", type=int, default=32)
    ap.add_argument("--sigma", type=float, default=0.01)
    ap.add_argument("--layer", type=int, default=-1, help="hidden state (default: the record's layer)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=["batched", "published", "both"], default="both")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    m = Model(a.gguf)
    load = time.perf_counter() - t0
    print(f"peer_torch: {a.gguf}: {m.arch}, {m.layers} blocks, width {m.dim}, loaded in {load:.2f} s", file=sys.stderr)
    gen = torch.Generator().manual_seed(a.seed)
    with open(a.ids) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    # Warm-up, excluded like lmood's session load: torch's first calls
    # pick kernels and grow its allocator.
    t0 = time.perf_counter()
    warm = torch.tensor([t["id"] for t in recs[0]["tokens"]])
    run_batched(m, warm, m.layers, 1, a.sigma, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        m.forward(m.w["token_embd.weight"][warm][None], m.layers, logits=True)
    print(f"peer_torch: warm-up {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    for rec in recs:
        ids = torch.tensor([t["id"] for t in rec["tokens"]])
        depth = a.layer if a.layer >= 0 else rec["layer"]
        out = {"prompt": rec["prompt"], "tokens": len(ids), "layer": depth, "samples": a.samples, "load_s": load}
        modes = ["batched", "published"] if a.mode == "both" else [a.mode]
        for mode in modes:
            fn = run_batched if mode == "batched" else run_published
            t0, c0 = time.perf_counter(), time.process_time()
            tok, flat = fn(m, ids, depth, a.samples, a.sigma, gen)
            out[mode + "_s"] = time.perf_counter() - t0
            out[mode + "_cpu_s"] = time.process_time() - c0  # all threads
            out[mode] = summary(tok, flat)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
