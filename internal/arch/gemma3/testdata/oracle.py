#!/usr/bin/env python3
"""Independent float64 reference forward pass of a gemma3 GGUF, in numpy.

lmood's gemma3 ONNX graph is checked against this. It shares no code with
lmood: weights are read and dequantized by the PyPI `gguf` package, and the
model follows llama.cpp's reading of a gemma3 GGUF:

  h0 = sqrt(d) * token_embd[ids]                       (hidden state 0)
  per block i (0-based):
    global = (i + 1) % 6 == 0      (else sliding window, rope base 10000)
    x  = rms(h) * attn_norm        (norm weights used as stored: the
                                    converter folded Gemma's 1 + w in)
    q, k, v = x Wq, x Wk, x Wv; q, k per head: rms(.) * q_norm / k_norm,
    then rotate-half rope (global: base rope.freq_base, positions / linear
    scaling factor); q *= 1/sqrt(key_length)
    query t attends key s if s <= t and (global or t - s < window)
    a  = rms(attn Wo) * post_attention_norm;  h += a
    f  = rms(down(gelu_tanh(x Wg) * x Wu)) * post_ffw_norm, x = rms(h)*ffn_norm
    h += f
  logits = rms(h) * output_norm @ (output or token_embd).T

Attention is computed one query position at a time with explicit lists of
visible keys (unlike the graph's masked matrix products).

Usage:
  oracle.py --gguf MODEL.gguf --ids 1,2,3 --points resid.0,norm.3,attn.2,mlp.2,logits --out points.bin

Writes the named points one after the other, each float32 [len(ids), width].
"""
import argparse
import math
import sys

import numpy as np
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


class Weights:
    def __init__(self, reader):
        self.t = {t.name: t for t in reader.tensors}

    def has(self, name):
        return name in self.t

    def get(self, name, dtype=np.float64):
        t = self.t[name]
        w = dequantize(t.data, t.tensor_type)
        return np.asarray(w, dtype=dtype).reshape([int(d) for d in reversed(t.shape)])

    def __getitem__(self, name):
        return self.get(name)


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rope(x, base, scale):
    # x: [T, heads, hd]; rotate (j, j + hd/2) by (t / scale) * base^(-2j/hd)
    T, _, hd = x.shape
    half = hd // 2
    out = np.empty_like(x)
    for t in range(T):
        for j in range(half):
            ang = (t / scale) * base ** (-2.0 * j / hd)
            c, s = math.cos(ang), math.sin(ang)
            a, b = x[t, :, j].copy(), x[t, :, j + half].copy()
            out[t, :, j] = a * c - b * s
            out[t, :, j + half] = b * c + a * s
    return out


def forward(reader, ids, depth):
    A = field(reader, "general.architecture")
    assert A == "gemma3", A
    n_layer = field(reader, f"{A}.block_count")
    dim = field(reader, f"{A}.embedding_length")
    n_head = field(reader, f"{A}.attention.head_count")
    n_kv = field(reader, f"{A}.attention.head_count_kv", n_head)
    hd = field(reader, f"{A}.attention.key_length", dim // n_head)
    eps = field(reader, f"{A}.attention.layer_norm_rms_epsilon", 1e-6)
    base_global = field(reader, f"{A}.rope.freq_base", 1e6)
    window = field(reader, f"{A}.attention.sliding_window")
    scale_global = 1.0
    if field(reader, f"{A}.rope.scaling.type", "none") == "linear":
        scale_global = field(reader, f"{A}.rope.scaling.factor")
    W = Weights(reader)
    depth = min(depth, n_layer)

    emb = W.get("token_embd.weight", np.float32)  # [vocab, dim]
    h = emb[np.asarray(ids)].astype(np.float64) * math.sqrt(dim)
    T = len(ids)
    pts = {"resid.0": h.copy()}
    for i in range(depth):
        p = f"blk.{i}."
        is_global = (i + 1) % 6 == 0
        base, scale = (base_global, scale_global) if is_global else (10000.0, 1.0)
        x = rms(h, W[p + "attn_norm.weight"], eps)
        pts[f"norm.{i}"] = x.copy()
        q = (x @ W[p + "attn_q.weight"].T).reshape(T, n_head, hd)
        k = (x @ W[p + "attn_k.weight"].T).reshape(T, n_kv, hd)
        v = (x @ W[p + "attn_v.weight"].T).reshape(T, n_kv, hd)
        q = rope(rms(q, W[p + "attn_q_norm.weight"], eps), base, scale) / math.sqrt(hd)
        k = rope(rms(k, W[p + "attn_k_norm.weight"], eps), base, scale)
        ctx = np.zeros((T, n_head, hd))
        group = n_head // n_kv
        for t in range(T):
            keys = [s for s in range(t + 1) if is_global or t - s < window]
            for hh in range(n_head):
                kh = hh // group
                sc = np.array([q[t, hh] @ k[s, kh] for s in keys])
                pr = np.exp(sc - sc.max())
                pr /= pr.sum()
                ctx[t, hh] = sum(pr[n] * v[s, kh] for n, s in enumerate(keys))
        a = ctx.reshape(T, n_head * hd) @ W[p + "attn_output.weight"].T
        a = rms(a, W[p + "post_attention_norm.weight"], eps)
        pts[f"attn.{i + 1}"] = a
        h = h + a
        x = rms(h, W[p + "ffn_norm.weight"], eps)
        f = (gelu_tanh(x @ W[p + "ffn_gate.weight"].T) * (x @ W[p + "ffn_up.weight"].T)) @ W[p + "ffn_down.weight"].T
        f = rms(f, W[p + "post_ffw_norm.weight"], eps)
        pts[f"mlp.{i + 1}"] = f
        h = h + f
        pts[f"resid.{i + 1}"] = h.copy()
    if depth < n_layer:
        pts[f"norm.{depth}"] = rms(h, W[f"blk.{depth}.attn_norm.weight"], eps)
    else:
        x = rms(h, W["output_norm.weight"], eps)
        pts[f"norm.{depth}"] = x
        head = W.get("output.weight", np.float32) if W.has("output.weight") else emb
        logits = np.empty((T, head.shape[0]))
        for s in range(0, head.shape[0], 16384):  # a 262k vocabulary in float64 chunks
            logits[:, s:s + 16384] = x @ head[s:s + 16384].astype(np.float64).T
        pts["logits"] = logits
    return pts, n_layer


def depth_of(name, n_layer):
    if name == "logits":
        return n_layer
    return int(name.split(".")[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--points", required=True, help="comma-separated points (resid.i, norm.i, attn.i, mlp.i, logits)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ids = [int(x) for x in a.ids.split(",")]
    reader = GGUFReader(a.gguf)
    n_layer = field(reader, "gemma3.block_count")
    names = a.points.split(",")
    pts, _ = forward(reader, ids, max(depth_of(x, n_layer) for x in names))
    missing = [x for x in names if x not in pts]
    if missing:
        sys.exit(f"unknown or out-of-range points {missing}")
    out = np.concatenate([pts[x].astype("<f4").ravel() for x in names])
    out.tofile(a.out)
    print(f"wrote {len(names)} points ({out.size} values) to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
