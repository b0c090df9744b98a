"""Plumbing shared by the numpy reference oracles of the families
(internal/arch/<family>/testdata/oracle.py).

Each family's oracle.py holds its own forward pass, written like that
family's reference model; this module holds only what is the same for all:
reading GGUF metadata and dequantized weights with the PyPI `gguf` package
(no lmood code), a few textbook operations (RMSNorm, GELU, rotate-half rotary
embeddings, causal attention with explicit lists of visible keys), and the
command line every oracle answers:

  oracle.py --gguf MODEL.gguf --ids 1,2,3 --points resid.0,norm.3,attn.2,mlp.2,logits --out points.bin

which writes the named points one after the other, each float32
[len(ids), width].

An oracle imports it with:

  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata"))
  import oracle_common as oc
"""
import argparse
import math
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def field(reader, key, default=None):
    """The scalar or string metadata value key, default if absent."""
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.parts[f.data[0]]
    if f.types and f.types[0].name == "STRING":
        return bytes(v).decode()
    return v.tolist()[0]


class Weights:
    """Dequantized tensors by GGUF name: W(name) or W[name] is float64 in
    numpy order (the reverse of ggml's ne: a linear layer is [out, in])."""

    def __init__(self, reader):
        self.t = {t.name: t for t in reader.tensors}

    def has(self, name):
        return name in self.t

    def __contains__(self, name):
        return name in self.t

    def get(self, name, dtype=np.float64):
        t = self.t[name]
        w = dequantize(t.data, t.tensor_type)
        return np.asarray(w, dtype=dtype).reshape([int(d) for d in reversed(t.shape)])

    def __getitem__(self, name):
        return self.get(name)

    def __call__(self, name):
        return self.get(name)


def rms(x, w, eps):
    """RMSNorm over the last axis, times w."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def gelu_tanh(x):
    """GELU, tanh approximation."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rope(x, base, scale=1.0):
    """Rotate-half (NEOX) rotary embeddings of x [T, heads, hd]: the pair
    (j, j + hd/2) at position t turns by (t / scale) * base^(-2j/hd)."""
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


def attend(q, k, v, n_head, n_kv, window=None, softcap=None):
    """Causal grouped-query attention, one query position at a time: query
    t of head hh sees keys s <= t (and, with a window, t - s < window) of kv
    head hh // (n_head / n_kv). q is already scaled. With softcap, each
    score q.k becomes softcap * tanh(q.k / softcap) before the softmax.
    Returns [T, n_head * head_dim]."""
    T = q.shape[0]
    ctx = np.zeros((T, n_head, v.shape[2]))
    group = n_head // n_kv
    for t in range(T):
        keys = [s for s in range(t + 1) if window is None or t - s < window]
        for hh in range(n_head):
            kh = hh // group
            sc = np.array([q[t, hh] @ k[s, kh] for s in keys])
            if softcap is not None:
                sc = softcap * np.tanh(sc / softcap)
            pr = np.exp(sc - sc.max())
            pr /= pr.sum()
            ctx[t, hh] = sum(pr[n] * v[s, kh] for n, s in enumerate(keys))
    return ctx.reshape(T, -1)


def depth_of(name, n_layer):
    """How many blocks point name needs."""
    if name == "logits":
        return n_layer
    return int(name.split(".")[1])


def main(forward, doc):
    """Runs the command line above: forward(reader, ids, depth) returns the
    points (name -> [T, width]) of the first depth blocks."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--points", required=True, help="comma-separated points (resid.i, norm.i, attn.i, mlp.i, logits)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ids = [int(x) for x in a.ids.split(",")]
    reader = GGUFReader(a.gguf)
    n_layer = field(reader, field(reader, "general.architecture") + ".block_count")
    names = a.points.split(",")
    pts = forward(reader, ids, max(depth_of(x, n_layer) for x in names))
    missing = [x for x in names if x not in pts]
    if missing:
        sys.exit(f"unknown or out-of-range points {missing}")
    out = np.concatenate([pts[x].astype("<f4").ravel() for x in names])
    out.tofile(a.out)
    print(f"wrote {len(names)} points ({out.size} values) to {a.out}", file=sys.stderr)
