#!/usr/bin/env python3
"""Independent float64 reference forward pass of a gpt2 GGUF, in numpy.

lmood's gpt2 ONNX graph is checked against this. It shares no code with
lmood's Go code: weights are read and dequantized by the PyPI `gguf` package
(through ../../testdata/oracle_common.py), and the model follows llama.cpp's reading of a gpt2 GGUF (src/models/gpt2.cpp):

  h0 = token_embd[ids] + position_embd[0..T-1]           (hidden state 0)
  per block i (0-based):
    x  = layernorm(h) (attn_norm weight, bias)
    [q | k | v] = x Wqkv + bqkv; q *= 1/sqrt(head_dim); query t attends keys s <= t
    a  = attn Wo + bo;  h += a
    x  = layernorm(h) (ffn_norm);  f = gelu_tanh(x Wup + bup) Wdown + bdown;  h += f
  logits = layernorm(h) (output_norm) @ (output or token_embd).T

Usage:
  oracle.py --gguf MODEL.gguf --ids 1,2,3 --points resid.0,norm.3,attn.2,mlp.2,logits --out points.bin
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata"))
from oracle_common import Weights, attend, field, gelu_tanh, main  # noqa: E402

ARCH = "gpt2"


def layernorm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def forward(reader, ids, depth):
    A = field(reader, "general.architecture")
    assert A == ARCH, A
    n_layer = field(reader, f"{A}.block_count")
    dim = field(reader, f"{A}.embedding_length")
    n_head = field(reader, f"{A}.attention.head_count")
    hd = dim // n_head
    eps = field(reader, f"{A}.attention.layer_norm_epsilon", 1e-5)
    W = Weights(reader)
    depth = min(depth, n_layer)

    def ln(x, prefix):
        return layernorm(x, W(prefix + ".weight"), W(prefix + ".bias"), eps)

    emb = W("token_embd.weight")  # [vocab, dim]
    T = len(ids)
    h = emb[np.asarray(ids)] + W("position_embd.weight")[:T]
    pts = {"resid.0": h.copy()}
    for i in range(depth):
        p = f"blk.{i}."
        x = ln(h, p + "attn_norm")
        pts[f"norm.{i}"] = x
        qkv = x @ W(p + "attn_qkv.weight").T + W(p + "attn_qkv.bias")
        q, k, v = (z.reshape(T, n_head, hd) for z in np.split(qkv, 3, axis=-1))
        a = attend(q / math.sqrt(hd), k, v, n_head, n_head) @ W(p + "attn_output.weight").T + W(p + "attn_output.bias")
        pts[f"attn.{i + 1}"] = a
        h = h + a
        x = ln(h, p + "ffn_norm")
        u = gelu_tanh(x @ W(p + "ffn_up.weight").T + W(p + "ffn_up.bias"))
        f = u @ W(p + "ffn_down.weight").T + W(p + "ffn_down.bias")
        pts[f"mlp.{i + 1}"] = f
        h = h + f
        pts[f"resid.{i + 1}"] = h.copy()
    if depth < n_layer:
        pts[f"norm.{depth}"] = ln(h, f"blk.{depth}.attn_norm")
    else:
        x = ln(h, "output_norm")
        pts[f"norm.{depth}"] = x
        head = W("output.weight") if "output.weight" in W else emb
        pts["logits"] = x @ head.T
    return pts


if __name__ == "__main__":
    main(forward, __doc__)
