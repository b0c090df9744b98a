#!/usr/bin/env python3
"""Independent float64 reference forward pass of a qwen3 GGUF, in numpy.

lmood's qwen3 ONNX graph is checked against this. It shares no code with
lmood's Go code: weights are read and dequantized by the PyPI `gguf` package
(through ../../testdata/oracle_common.py), and the model follows
llama.cpp's reading of a qwen3 GGUF (src/models/qwen3.cpp):

  h0 = token_embd[ids]                                  (hidden state 0)
  per block i (0-based):
    x  = rms(h) * attn_norm
    q, k, v = x Wq, x Wk, x Wv (no bias); per head: q = rms(q) * q_norm,
    k = rms(k) * k_norm; rotate-half rope (NEOX), base rope.freq_base;
    q *= 1/sqrt(key_length); query t attends keys s <= t
    a  = attn Wo;  h += a
    f  = down(silu(x Wg) * x Wu), x = rms(h) * ffn_norm;  h += f
  logits = rms(h) * output_norm @ (output or token_embd).T

Attention is computed one query position at a time with explicit lists of
visible keys (unlike the graph's masked matrix products).

Usage:
  oracle.py --gguf MODEL.gguf --ids 1,2,3 --points resid.0,norm.3,attn.2,mlp.2,logits --out points.bin
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata"))
from oracle_common import Weights, attend, field, main, rms, rope  # noqa: E402

ARCH = "qwen3"


def forward(reader, ids, depth):
    A = field(reader, "general.architecture")
    assert A == ARCH, A
    n_layer = field(reader, f"{A}.block_count")
    dim = field(reader, f"{A}.embedding_length")
    n_head = field(reader, f"{A}.attention.head_count")
    n_kv = field(reader, f"{A}.attention.head_count_kv", n_head)
    hd = field(reader, f"{A}.attention.key_length", dim // n_head)
    eps = field(reader, f"{A}.attention.layer_norm_rms_epsilon", 1e-6)
    base = field(reader, f"{A}.rope.freq_base", 1e6)
    W = Weights(reader)
    depth = min(depth, n_layer)

    emb = W("token_embd.weight")  # [vocab, dim]
    h = emb[np.asarray(ids)]
    T = len(ids)
    pts = {"resid.0": h.copy()}
    for i in range(depth):
        p = f"blk.{i}."
        x = rms(h, W(p + "attn_norm.weight"), eps)
        pts[f"norm.{i}"] = x
        q = (x @ W(p + "attn_q.weight").T).reshape(T, n_head, hd)
        k = (x @ W(p + "attn_k.weight").T).reshape(T, n_kv, hd)
        v = (x @ W(p + "attn_v.weight").T).reshape(T, n_kv, hd)
        q = rope(rms(q, W(p + "attn_q_norm.weight"), eps), base) / math.sqrt(hd)
        k = rope(rms(k, W(p + "attn_k_norm.weight"), eps), base)
        a = attend(q, k, v, n_head, n_kv) @ W(p + "attn_output.weight").T
        pts[f"attn.{i + 1}"] = a
        h = h + a
        x = rms(h, W(p + "ffn_norm.weight"), eps)
        g = x @ W(p + "ffn_gate.weight").T
        f = (g / (1.0 + np.exp(-g)) * (x @ W(p + "ffn_up.weight").T)) @ W(p + "ffn_down.weight").T
        pts[f"mlp.{i + 1}"] = f
        h = h + f
        pts[f"resid.{i + 1}"] = h.copy()
    if depth < n_layer:
        pts[f"norm.{depth}"] = rms(h, W(f"blk.{depth}.attn_norm.weight"), eps)
    else:
        x = rms(h, W("output_norm.weight"), eps)
        pts[f"norm.{depth}"] = x
        head = W("output.weight") if "output.weight" in W else emb
        pts["logits"] = x @ head.T
    return pts


if __name__ == "__main__":
    main(forward, __doc__)
