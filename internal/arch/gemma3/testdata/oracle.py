#!/usr/bin/env python3
"""Independent float64 reference forward pass of a gemma3 GGUF, in numpy.

lmood's gemma3 ONNX graph is checked against this. It shares no code with
lmood's Go code: weights are read and dequantized by the PyPI `gguf` package
(through ../../testdata/oracle_common.py), and the model follows llama.cpp's reading of a gemma3 GGUF:

  h0 = sqrt(d) * token_embd[ids]                       (hidden state 0)
  per block i (0-based):
    global = (i + 1) % 6 == 0      (else sliding window, rope base rope.freq_base_swa, default 10000)
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
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata"))
from oracle_common import Weights, attend, field, gelu_tanh, main, rms, rope  # noqa: E402


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
    base_local = field(reader, f"{A}.rope.freq_base_swa", 10000.0)
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
        base, scale = (base_global, scale_global) if is_global else (base_local, 1.0)
        x = rms(h, W[p + "attn_norm.weight"], eps)
        pts[f"norm.{i}"] = x.copy()
        q = (x @ W[p + "attn_q.weight"].T).reshape(T, n_head, hd)
        k = (x @ W[p + "attn_k.weight"].T).reshape(T, n_kv, hd)
        v = (x @ W[p + "attn_v.weight"].T).reshape(T, n_kv, hd)
        q = rope(rms(q, W[p + "attn_q_norm.weight"], eps), base, scale) / math.sqrt(hd)
        k = rope(rms(k, W[p + "attn_k_norm.weight"], eps), base, scale)
        ctx = attend(q, k, v, n_head, n_kv, None if is_global else window)
        a = ctx @ W[p + "attn_output.weight"].T
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
    return pts


if __name__ == "__main__":
    main(forward, __doc__)
