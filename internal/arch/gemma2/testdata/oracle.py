#!/usr/bin/env python3
"""Independent float64 reference forward pass of a gemma2 GGUF, in numpy.

lmood's gemma2 ONNX graph is checked against this. It shares no code with
lmood's Go code: weights are read and dequantized by the PyPI `gguf` package
(through ../../testdata/oracle_common.py), and the model follows llama.cpp's
reading of a gemma2 GGUF (src/models/gemma2.cpp, defaults from
llama_model_gemma2::load_arch_hparams):

  h0 = sqrt(d) * token_embd[ids]                       (hidden state 0)
  per block i (0-based):
    local = i % 2 == 0             (sliding window; odd blocks are global)
    x  = rms(h) * attn_norm        (norm weights used as stored: the
                                    converter added Gemma's 1 to them)
    q, k, v = x Wq, x Wk, x Wv; rotate-half rope on q and k (base
    rope.freq_base, default 10000); q *= 1/sqrt(key_length)
    (1/sqrt(d/heads) with 46 blocks, the 27B)
    score(t, s) = cap_a * tanh(q_t . k_s / cap_a)      (attn_logit_softcapping)
    query t attends key s if s <= t and (global or t - s < window)
    a  = rms(attn Wo) * post_attention_norm;  h += a
    f  = rms(down(gelu_tanh(x Wg) * x Wu)) * post_ffw_norm, x = rms(h)*ffn_norm
    h += f
  logits = cap_f * tanh(rms(h) * output_norm @ token_embd.T / cap_f)
                                                        (final_logit_softcapping)

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
    assert A == "gemma2", A
    n_layer = field(reader, f"{A}.block_count")
    dim = field(reader, f"{A}.embedding_length")
    n_head = field(reader, f"{A}.attention.head_count")
    n_kv = field(reader, f"{A}.attention.head_count_kv", n_head)
    hd = field(reader, f"{A}.attention.key_length", dim // n_head)
    eps = field(reader, f"{A}.attention.layer_norm_rms_epsilon")
    base = field(reader, f"{A}.rope.freq_base", 10000.0)
    base_local = field(reader, f"{A}.rope.freq_base_swa", base)
    window = field(reader, f"{A}.attention.sliding_window", 4096)
    cap_attn = field(reader, f"{A}.attn_logit_softcapping", 50.0)
    cap_final = field(reader, f"{A}.final_logit_softcapping", 30.0)
    scale = 1 / math.sqrt(dim // n_head if n_layer == 46 else hd)
    W = Weights(reader)
    depth = min(depth, n_layer)

    emb = W.get("token_embd.weight", np.float32)  # [vocab, dim]
    h = emb[np.asarray(ids)].astype(np.float64) * math.sqrt(dim)
    T = len(ids)
    pts = {"resid.0": h.copy()}
    for i in range(depth):
        p = f"blk.{i}."
        local = i % 2 == 0
        x = rms(h, W[p + "attn_norm.weight"], eps)
        pts[f"norm.{i}"] = x.copy()
        q = (x @ W[p + "attn_q.weight"].T).reshape(T, n_head, hd)
        k = (x @ W[p + "attn_k.weight"].T).reshape(T, n_kv, hd)
        v = (x @ W[p + "attn_v.weight"].T).reshape(T, n_kv, hd)
        b = base_local if local else base
        q = rope(q, b) * scale
        k = rope(k, b)
        ctx = attend(q, k, v, n_head, n_kv, window if local else None, softcap=cap_attn)
        a = rms(ctx @ W[p + "attn_output.weight"].T, W[p + "post_attention_norm.weight"], eps)
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
        logits = np.empty((T, emb.shape[0]))
        for s in range(0, emb.shape[0], 16384):  # a 256k vocabulary in float64 chunks
            logits[:, s:s + 16384] = x @ emb[s:s + 16384].astype(np.float64).T
        pts["logits"] = cap_final * np.tanh(logits / cap_final)
    return pts


if __name__ == "__main__":
    main(forward, __doc__)
