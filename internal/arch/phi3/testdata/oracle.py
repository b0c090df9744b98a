#!/usr/bin/env python3
"""Independent float64 reference forward pass of a phi3 GGUF, in numpy.

lmood's phi3 ONNX graph is checked against this. It shares no code with
lmood's Go code: weights are read and dequantized by the PyPI `gguf` package
(through ../../testdata/oracle_common.py), and the model follows
llama.cpp's reading of a phi3 GGUF (src/models/phi3.cpp):

  h0 = token_embd[ids]                                  (hidden state 0)
  per block i (0-based):
    x  = rms(h) * attn_norm
    q, k, v = x Wqkv cut into [q | k | v] (or x Wq, x Wk, x Wv; no bias);
    rotate-half rope (NEOX), base rope.freq_base; q *= 1/sqrt(head_dim);
    query t attends keys s <= t
    a  = attn Wo;  h += a
    g, u = x Wup cut into [gate | up], x = rms(h) * ffn_norm
    f  = down(silu(g) * u);  h += f
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

ARCH = "phi3"


def forward(reader, ids, depth):
    A = field(reader, "general.architecture")
    assert A == ARCH, A
    n_layer = field(reader, f"{A}.block_count")
    dim = field(reader, f"{A}.embedding_length")
    n_head = field(reader, f"{A}.attention.head_count")
    n_kv = field(reader, f"{A}.attention.head_count_kv", n_head)
    hd = field(reader, f"{A}.attention.key_length", dim // n_head)
    eps = field(reader, f"{A}.attention.layer_norm_rms_epsilon", 1e-5)
    base = field(reader, f"{A}.rope.freq_base", 10000.0)
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
        if p + "attn_qkv.weight" in W:
            qkv = x @ W(p + "attn_qkv.weight").T
            q, k, v = np.split(qkv, [n_head * hd, n_head * hd + n_kv * hd], axis=-1)
        else:
            q, k, v = (x @ W(p + n).T for n in ("attn_q.weight", "attn_k.weight", "attn_v.weight"))
        q = rope(q.reshape(T, n_head, hd), base) / math.sqrt(hd)
        k = rope(k.reshape(T, n_kv, hd), base)
        v = v.reshape(T, n_kv, hd)
        a = attend(q, k, v, n_head, n_kv) @ W(p + "attn_output.weight").T
        pts[f"attn.{i + 1}"] = a
        h = h + a
        x = rms(h, W(p + "ffn_norm.weight"), eps)
        gu = x @ W(p + "ffn_up.weight").T
        g, u = gu[:, : gu.shape[1] // 2], gu[:, gu.shape[1] // 2 :]
        f = (g / (1.0 + np.exp(-g)) * u) @ W(p + "ffn_down.weight").T
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
