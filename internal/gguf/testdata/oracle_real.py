#!/usr/bin/env python3
"""Independent reference for TestRealFile (internal/gguf).

Reads a GGUF file with the PyPI `gguf` package and prints, as JSON on
stdout: the metadata keys in file order, the data section offset, every
tensor descriptor (name, ggml-order dims, type id, absolute data offset)
and, for each tensor named on the command line, the first N dequantized
values as base64-encoded little-endian float32.

Usage: oracle_real.py FILE N TENSOR [TENSOR...]
"""

import base64
import json
import sys

import numpy as np
import gguf


def first_values(t, n):
    ne0 = int(t.shape[0])
    rows = max(1, -(-n // ne0))
    data = t.data.reshape(-1, t.data.shape[-1])[:rows]
    vals = gguf.quants.dequantize(data, t.tensor_type)
    return np.asarray(vals, dtype=np.float32).reshape(-1)[:n]


def main():
    path, n, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    r = gguf.GGUFReader(path)
    out = {
        "keys": [k for k in r.fields if not k.startswith("GGUF.")],
        "data_offset": int(r.data_offset),
        "tensors": [
            {"name": t.name, "dims": [int(d) for d in t.shape], "type": int(t.tensor_type),
             "offset": int(t.data_offset)}
            for t in r.tensors
        ],
        "samples": {},
    }
    by_name = {t.name: t for t in r.tensors}
    for name in names:
        vals = first_values(by_name[name], n).astype("<f4")
        out["samples"][name] = base64.b64encode(vals.tobytes()).decode()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
