package arch

// QuantLinear is implemented by a family configuration whose graph
// multiplies by its linear weights through onnx.Builder.Linear, so the
// store may keep those weights block-quantized (MatMulNBits) instead of
// expanding them to float32. Families without it get float32 weights.
type QuantLinear interface {
	// LinearRows reports whether the GGUF tensor name (dims in GGUF order:
	// ne[0] = inputs, ne[1] = outputs) is a linear weight the graph reads
	// through Linear, and the order its output rows must be stored in:
	// stored row i is GGUF row rows[i] (nil: as in the GGUF). The weight
	// is then stored [out, in] (MatMulNBits's N×K), not transposed.
	LinearRows(name string, dims []uint64) (rows []int, ok bool)
}
