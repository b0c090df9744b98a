// Package gguf reads (and, for tests and fixtures, writes) GGUF model files,
// the single-file container format used by llama.cpp and the ggml family of
// tools.
//
// A GGUF file consists of a small little-endian header (magic "GGUF",
// version, tensor count, metadata count), a list of typed metadata key/value
// pairs, a table of tensor descriptors, and finally an aligned data section
// holding the raw (possibly block-quantized) tensor bytes. Versions 2 and 3
// are supported; both use 64-bit counts and lengths. Version 1 files and
// big-endian files are rejected with a descriptive error.
//
// Parsing is defensive: every count and length read from the file is checked
// against the number of bytes that remain before anything is allocated, so a
// truncated or hostile file produces an error (wrapping [ErrTruncated],
// [ErrCorrupt], [ErrNotGGUF] or [ErrUnsupportedVersion]) instead of a panic
// or a huge allocation.
//
// Tensor dimensions are kept in ggml order: Dims[0] (ggml's ne[0]) is the
// fastest-varying dimension. [File.ReadTensorF32] dequantizes a whole tensor
// to float32 in storage order, which is row-major (numpy/C) order for the
// reversed shape returned by [TensorInfo.Shape].
//
// The [Writer] type builds GGUF v3 files with arbitrary metadata and F32,
// F16, BF16 or Q8_0 tensors. It exists so that other packages can generate
// small synthetic models in their tests.
//
// A parsed [File] is immutable and safe for concurrent use by multiple
// goroutines.
package gguf
