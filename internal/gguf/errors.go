package gguf

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (where
// applicable) together with context such as the byte offset, the metadata
// key or the tensor name involved; test for them with [errors.Is].
var (
	// ErrNotGGUF reports that the input does not start with the GGUF magic.
	ErrNotGGUF = errors.New("not a GGUF file")

	// ErrUnsupportedVersion reports a GGUF version other than 2 or 3, or a
	// big-endian file.
	ErrUnsupportedVersion = errors.New("unsupported GGUF version")

	// ErrTruncated reports that the file ends before a structure it
	// declares, or that a declared count or length cannot possibly fit in
	// the remaining bytes.
	ErrTruncated = errors.New("file is truncated or corrupt")

	// ErrCorrupt reports a structurally invalid file: an unknown metadata
	// value type, too many tensor dimensions, an overflowing element
	// count, misaligned or overlapping tensor data, duplicate names and
	// similar violations of the format.
	ErrCorrupt = errors.New("file is corrupt")

	// ErrUnsupportedType reports a tensor type that this package cannot
	// size or dequantize.
	ErrUnsupportedType = errors.New("unsupported tensor type")

	// ErrClosed reports use of a File after Close.
	ErrClosed = errors.New("file already closed")
)
