package nn

import "fmt"

// Kind says how a GGUF tensor is laid out for the graph.
type Kind int

const (
	// Matrix is a linear weight y = W x, GGUF dims [in, out] (row-major
	// [out, in]); it is stored transposed, [in, out], so the graph computes
	// x @ W.
	Matrix Kind = iota
	// Vector is a norm weight or a bias, stored as is.
	Vector
	// Rows is a table read by row (token or position embeddings), GGUF dims
	// [dim, rows]; it is stored [rows, dim].
	Rows
)

// Tensor is one GGUF tensor a graph reads: its name, its dims in GGUF order
// (fastest varying first) and its kind.
type Tensor struct {
	Name string
	Dims []int
	Kind Kind
}

// Block returns the GGUF name of a tensor in block i, e.g.
// Block(3, "attn_q.weight") = "blk.3.attn_q.weight".
func Block(i int, name string) string { return fmt.Sprintf("blk.%d.%s", i, name) }

// Tensors is a family's list of tensors for one configuration, in file
// order. Families implement arch.Config's TensorNames, CheckTensorShape and
// PrepareWeight through it.
type Tensors []Tensor

// Names lists the tensor names in order.
func (ts Tensors) Names() []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

func (ts Tensors) find(name string) (Tensor, bool) {
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// IsLinear reports whether name is a linear weight (Kind Matrix) of the
// list: one a family may keep block-quantized (arch.QuantLinear).
func (ts Tensors) IsLinear(name string) bool {
	t, ok := ts.find(name)
	return ok && t.Kind == Matrix
}

// Check compares a GGUF tensor's dims with the expected ones; source names
// the metadata they come from. Tensors the list does not hold are not
// checked (the graph does not read them).
func (ts Tensors) Check(a, name string, dims []uint64, source string) error {
	t, ok := ts.find(name)
	if !ok {
		return nil
	}
	same := len(dims) == len(t.Dims)
	for i := 0; same && i < len(dims); i++ {
		same = dims[i] == uint64(t.Dims[i])
	}
	if !same {
		return fmt.Errorf("%s: tensor %s has dims %v, the metadata says %v (%s): the file is inconsistent", a, name, dims, t.Dims, source)
	}
	return nil
}

// Prepare lays a dequantized tensor out for the graph (see Kind), after
// checking its dims.
func (ts Tensors) Prepare(a, name string, dims []uint64, data []float32, source string) ([]float32, []int64, error) {
	t, ok := ts.find(name)
	if !ok {
		return nil, nil, fmt.Errorf("%s: tensor %s is not read by the graph", a, name)
	}
	if err := ts.Check(a, name, dims, source); err != nil {
		return nil, nil, err
	}
	n := 1
	for _, d := range t.Dims {
		n *= d
	}
	if len(data) != n {
		return nil, nil, fmt.Errorf("%s: tensor %s: %d values for dims %v", a, name, len(data), dims)
	}
	switch t.Kind {
	case Vector:
		return data, []int64{int64(n)}, nil
	case Rows:
		return data, []int64{int64(t.Dims[1]), int64(t.Dims[0])}, nil
	}
	in, out := t.Dims[0], t.Dims[1]
	return Transpose(data, out, in), []int64{int64(in), int64(out)}, nil
}

// Transpose turns row-major [rows, cols] data into [cols, rows].
func Transpose(data []float32, rows, cols int) []float32 {
	t := make([]float32, len(data))
	for r := 0; r < rows; r++ {
		for c, v := range data[r*cols : (r+1)*cols] {
			t[c*rows+r] = v
		}
	}
	return t
}

// Params counts the weights of the tensors (token_embd counted once even
// if a tied head reuses it).
func (ts Tensors) Params() int64 {
	var n int64
	for _, t := range ts {
		p := int64(1)
		for _, d := range t.Dims {
			p *= int64(d)
		}
		n += p
	}
	return n
}
