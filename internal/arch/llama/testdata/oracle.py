#!/usr/bin/env python3
"""Independent reference forward pass of a llama-family GGUF, in numpy.

This is the oracle lmood's ONNX graph is checked against. It shares no code
with lmood's Go code: weights are read and dequantized by the PyPI `gguf`
package (through ../../testdata/oracle_common.py), and
the forward pass follows the GGUF (llama.cpp) layout directly -- rotary
embeddings rotate interleaved pairs (2j, 2j+1) on the weights exactly as
stored, whereas lmood un-permutes q/k to rotate-half order. Everything is
computed in float64.

Usage:
  oracle.py --gguf MODEL.gguf --ids 1,2,3 --layers 0,1,15,30 --out states.bin
  oracle.py --gguf MODEL.gguf --ids '1,2,3;4,5' ...   (two sequences, run separately)
  oracle.py --gguf MODEL.gguf --ids 1,2,3 --points resid.0,norm.3,attn.2,mlp.2,logits --out points.bin

With --layers, writes float32 little-endian [len(layers), len(ids), dim] to
--out, and with --logits-out the [len(ids), vocab] logits of the output head.
With --points, writes the named measurement points one after the other,
each [len(ids), width] (width = vocab for logits, dim otherwise):
  resid.i  residual stream after block i (0 = embeddings)
  norm.i   RMSNorm(resid.i) * weight of block i+1's attn_norm (i < n),
           or of output_norm (i = n)
  attn.i   attention output of block i (1-based) after attn_output
  mlp.i    MLP output of block i (1-based)
  logits   output head

With several sequences (separated by ';'), each runs separately and the
token axis of every output is their total length: their rows follow each
other.
"""
import argparse
import os
import sys

import numpy as np
from gguf import GGUFReader

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata"))
from oracle_common import Weights, depth_of, field  # noqa: E402
from oracle_common import rms as rms_norm  # noqa: E402


def rope_interleaved(x, theta):
    # x: [heads, T, hd]; rotate pairs (2j, 2j+1) by pos * theta^(-2j/hd)
    _, T, hd = x.shape
    j = np.arange(hd // 2, dtype=np.float64)
    freq = theta ** (-2.0 * j / hd)
    ang = np.arange(T, dtype=np.float64)[:, None] * freq[None, :]
    c, s = np.cos(ang), np.sin(ang)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def rope_neox(x, theta):
    _, T, hd = x.shape
    half = hd // 2
    j = np.arange(half, dtype=np.float64)
    freq = theta ** (-2.0 * j / hd)
    ang = np.arange(T, dtype=np.float64)[:, None] * freq[None, :]
    c, s = np.cos(ang), np.sin(ang)
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


class CachedLayer:
    """Dequantizes each tensor of one block once, for all sequences."""

    def __init__(self, W):
        self.W, self.cache = W, {}

    def has(self, name):
        return self.W.has(name)

    def __getitem__(self, name):
        if name not in self.cache:
            self.cache[name] = self.W[name]
        return self.cache[name]


def block(h, W, p, n_head, n_kv, eps, theta, rope, pts, i):
    """Runs block i (1-based; GGUF prefix p) on one sequence h [T, dim],
    recording its measurement points in pts; returns the new residual."""
    T, dim = h.shape
    hd = dim // n_head
    causal = np.triu(np.full((T, T), -np.inf), k=1)
    x = rms_norm(h, W[p + "attn_norm.weight"], eps)
    pts[f"norm.{i - 1}"] = x.copy()
    q = x @ W[p + "attn_q.weight"].T
    k = x @ W[p + "attn_k.weight"].T
    v = x @ W[p + "attn_v.weight"].T
    if W.has(p + "attn_q.bias"):
        q, k, v = q + W[p + "attn_q.bias"], k + W[p + "attn_k.bias"], v + W[p + "attn_v.bias"]
    q = rope(q.reshape(T, n_head, hd).transpose(1, 0, 2), theta)
    k = rope(k.reshape(T, n_kv, hd).transpose(1, 0, 2), theta)
    v = v.reshape(T, n_kv, hd).transpose(1, 0, 2)
    rep = n_head // n_kv
    k, v = np.repeat(k, rep, axis=0), np.repeat(v, rep, axis=0)
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + causal
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    att = (probs @ v).transpose(1, 0, 2).reshape(T, n_head * hd)
    a = att @ W[p + "attn_output.weight"].T
    pts[f"attn.{i}"] = a
    h = h + a

    x = rms_norm(h, W[p + "ffn_norm.weight"], eps)
    g = x @ W[p + "ffn_gate.weight"].T
    u = x @ W[p + "ffn_up.weight"].T
    f = ((g / (1.0 + np.exp(-g))) * u) @ W[p + "ffn_down.weight"].T
    pts[f"mlp.{i}"] = f
    h = h + f
    pts[f"resid.{i}"] = h.copy()
    return h


def forward(reader, seqs, depth):
    """Runs blocks 1..depth on each token sequence of seqs separately;
    returns one dict of measurement points by name per sequence."""
    arch = field(reader, "general.architecture")
    n_layer = field(reader, f"{arch}.block_count")
    n_head = field(reader, f"{arch}.attention.head_count")
    n_kv = field(reader, f"{arch}.attention.head_count_kv", n_head)
    eps = field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    theta = field(reader, f"{arch}.rope.freq_base", 10000.0)
    rope = rope_interleaved if arch == "llama" else rope_neox
    W = Weights(reader)
    depth = min(depth, n_layer)

    emb = W["token_embd.weight"]  # [vocab, dim]
    hs = [emb[np.asarray(ids)] for ids in seqs]  # each [T, dim]
    pts = [{"resid.0": h.copy()} for h in hs]
    for i in range(depth):
        L = CachedLayer(W)  # one block's weights at a time: memory stays small
        for s in range(len(hs)):
            hs[s] = block(hs[s], L, f"blk.{i}.", n_head, n_kv, eps, theta, rope, pts[s], i + 1)
        del L
    for s, h in enumerate(hs):
        if depth < n_layer:
            pts[s][f"norm.{depth}"] = rms_norm(h, W[f"blk.{depth}.attn_norm.weight"], eps)
        else:
            x = rms_norm(h, W["output_norm.weight"], eps)
            pts[s][f"norm.{depth}"] = x
            head = W["output.weight"] if W.has("output.weight") else emb
            pts[s]["logits"] = x @ head.T
    return pts, n_layer


def joined(pts, name):
    """The point name of every sequence, rows concatenated."""
    return np.concatenate([p[name] for p in pts])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--ids", required=True,
                    help="comma-separated token ids; several sequences separated by ';' run separately and are concatenated in the outputs")
    ap.add_argument("--layers", help="comma-separated hidden-state indices")
    ap.add_argument("--points", help="comma-separated measurement points (resid.i, norm.i, attn.i, mlp.i, logits)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--logits-out", help="also write [T, vocab] logits (needs the last layer in --layers)")
    a = ap.parse_args()
    seqs = [[int(x) for x in part.split(",")] for part in a.ids.split(";")]
    reader = GGUFReader(a.gguf)
    arch = field(reader, "general.architecture")
    n_layer = field(reader, f"{arch}.block_count")
    if a.points:
        names = a.points.split(",")
        pts, _ = forward(reader, seqs, max(depth_of(x, n_layer) for x in names))
        missing = [x for x in names if x not in pts[0]]
        if missing:
            sys.exit(f"unknown or out-of-range points {missing}")
        out = np.concatenate([joined(pts, x).astype("<f4").ravel() for x in names])
        out.tofile(a.out)
        print(f"wrote {len(names)} points ({out.size} values) to {a.out}", file=sys.stderr)
        return
    if not a.layers:
        sys.exit("give --layers or --points")
    layers = [int(x) for x in a.layers.split(",")]
    pts, _ = forward(reader, seqs, max(layers))
    out = np.stack([joined(pts, f"resid.{l}") for l in layers]).astype("<f4")
    out.tofile(a.out)
    if a.logits_out:
        if "logits" not in pts[0]:
            sys.exit("--logits-out needs the last hidden state in --layers")
        joined(pts, "logits").astype("<f4").tofile(a.logits_out)
    print(f"wrote {out.shape} to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
