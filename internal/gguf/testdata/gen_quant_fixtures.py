#!/usr/bin/env python3
"""Generate dequantization reference fixtures for internal/gguf.

Uses the PyPI `gguf` package (tested with 0.19.0) and numpy as an
independent reference implementation of the ggml block formats.

For each tensor type this writes, under testdata/quant/:

  <TYPE>.bin   raw encoded blocks (N_ELEMS elements)
  <TYPE>.f32   the python-dequantized values, little-endian float32
  <TYPE>.src   (only for types python can quantize) the float32 input
               whose python quantization is the first half of <TYPE>.bin

The first half of each .bin comes from gguf.quants.quantize() applied to
seeded random data when python implements quantization for the type; the
rest is random raw blocks whose half-precision scale fields are replaced
by sane values (so every bit pattern of the quantized payload occurs), then
dequantized by python. K-quants, for which python only implements
dequantization, are random raw blocks throughout.

It also writes testdata/pywriter.gguf with gguf.GGUFWriter: metadata of
every value type plus a few of the tensors above, to cross-check the Go
parser against an independent writer.

Usage (from the repository root):
  ~/.cache/lmood/oracle-venv/bin/python internal/gguf/testdata/gen_quant_fixtures.py
"""

import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "quant")
N_ELEMS = 1024  # 4 super-blocks of 256, 32 blocks of 32

# Byte offsets of the half-precision scale fields inside one block, per
# type; these are overwritten with sane values in random raw blocks.
HALF_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}

QUANTIZABLE = {T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0}


def sane_halves(rng, n):
    """Random half-precision scales: mostly normal values of either sign,
    a few subnormals and zeros."""
    v = rng.uniform(-0.08, 0.08, size=n).astype(np.float16)
    kinds = rng.integers(0, 10, size=n)
    sub = (rng.integers(1, 1024, size=n)).astype(np.uint16).view(np.float16)
    v = np.where(kinds == 0, sub, v)
    v = np.where(kinds == 1, np.float16(0), v)
    return v


def random_blocks(rng, qtype, n_blocks):
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in HALF_FIELDS.get(qtype, []):
        h = sane_halves(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
        raw[:, off:off + 2] = h
    return raw


def make_fixture(rng, qtype):
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n_blocks = N_ELEMS // block_size
    src = None
    if qtype == T.F32:
        vals = rng.standard_normal(N_ELEMS).astype(np.float32)
        vals[:4] = [0.0, -0.0, np.float32(1e-40), np.float32(-3.0e38)]
        raw = vals.view(np.uint8)
    elif qtype == T.F16:
        # First half: rounding of random floats (with ties and specials);
        # second half: every kind of raw bit pattern except NaN payloads.
        src = (rng.standard_normal(N_ELEMS // 2) * 4).astype(np.float32)
        src[:8] = [0.0, -0.0, 65504.0, 70000.0, -1e-8, 6e-8, 3e-5, 1.0 + 2.0**-11]
        src[8:12] = [np.float32(2.0**-25), np.float32(2.0**-25 * 3), 1.0 + 3 * 2.0**-11, 65520.0]
        first = gguf.quants.quantize(src, qtype).view(np.uint8)
        bits = rng.integers(0, 1 << 16, size=N_ELEMS // 2, dtype=np.uint32).astype(np.uint16)
        exp = (bits >> 10) & 0x1F
        bits = np.where((exp == 0x1F) & ((bits & 0x3FF) != 0), bits & 0xFC00, bits).astype(np.uint16)
        bits[:4] = [0x0001, 0x83FF, 0x7C00, 0xFC00]
        raw = np.concatenate([first, bits.view(np.uint8)])
    elif qtype == T.BF16:
        src = rng.standard_normal(N_ELEMS // 2).astype(np.float32)
        src[:4] = [0.0, -0.0, np.float32(3.3895314e38), np.float32(1.0 + 2.0**-8)]
        first = gguf.quants.quantize(src.reshape(-1, 32), qtype).view(np.uint8).reshape(-1)
        bits = rng.integers(0, 1 << 16, size=N_ELEMS // 2, dtype=np.uint32).astype(np.uint16)
        exp = (bits >> 7) & 0xFF
        bits = np.where((exp == 0xFF) & ((bits & 0x7F) != 0), bits & 0xFF80, bits).astype(np.uint16)
        raw = np.concatenate([first, bits.view(np.uint8)])
    elif qtype in QUANTIZABLE:
        half = n_blocks // 2
        src = rng.standard_normal(half * block_size).astype(np.float32)
        src *= rng.uniform(0.01, 2.0, size=half).repeat(block_size).astype(np.float32)
        src[:block_size] = 0.0  # an all-zero block (scale 0)
        first = gguf.quants.quantize(src.reshape(-1, block_size), qtype).reshape(half, type_size)
        raw = np.concatenate([first, random_blocks(rng, qtype, n_blocks - half)]).reshape(-1)
    else:
        raw = random_blocks(rng, qtype, n_blocks).reshape(-1)

    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    assert raw.size == n_blocks * type_size, (qtype.name, raw.size)
    ref = gguf.quants.dequantize(raw.reshape(1, -1), qtype).astype(np.float32).reshape(-1)
    assert ref.size == N_ELEMS, (qtype.name, ref.size)
    return raw, ref, src


def write_pywriter(fixtures):
    path = os.path.join(HERE, "pywriter.gguf")
    w = gguf.GGUFWriter(path, arch="llama")  # adds general.architecture
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.1)
    w.add_uint64("test.u64", 18000000000000000000)
    w.add_int64("test.i64", -9000000000000000000)
    w.add_float64("test.f64", 2.5e-300)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "héllo, wörld")
    w.add_array("test.strings", ["a", "", "ccc"])
    w.add_key_value("test.i32s", [1, -2, 3], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.INT32)
    w.add_key_value("test.f32s", [0.5, -1.25], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.FLOAT32)
    w.add_key_value("test.u8s", [1, 2, 255], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT8)
    w.add_key_value("test.nested", [[1, 2], [3]], gguf.GGUFValueType.ARRAY)
    for name in ["F32", "F16", "Q4_1", "Q8_0", "Q6_K"]:
        qtype = T[name]
        raw, _, _ = fixtures[qtype]
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        # Two rows of 512 elements: ggml dims [512, 2].
        w.add_tensor("t." + name, raw.reshape(2, -1), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    np.seterr(over="ignore")  # intentional overflow to inf in the F16 fixture
    rng = np.random.default_rng(20240601)
    types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
             T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
    fixtures = {}
    for qtype in types:
        raw, ref, src = make_fixture(rng, qtype)
        fixtures[qtype] = (raw, ref, src)
        raw.tofile(os.path.join(OUT, qtype.name + ".bin"))
        ref.astype("<f4").tofile(os.path.join(OUT, qtype.name + ".f32"))
        if src is not None:
            src.astype("<f4").tofile(os.path.join(OUT, qtype.name + ".src"))
    write_pywriter(fixtures)
    from importlib.metadata import version
    print("wrote fixtures with gguf", version("gguf"), "numpy", np.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
