package drift

import (
	"errors"
	"fmt"
	"unsafe"
)

// Matrix is a row-major float32 tensor of shape [Rows, Cols]; for token
// tensors Rows is the token count T and Cols the width d. Data may be a
// view into a larger buffer (see [BatchItem]); it is never copied by this
// package unless documented.
type Matrix struct {
	Rows, Cols int
	Data       []float32
}

// NewMatrix allocates a zeroed rows x cols matrix.
func NewMatrix(rows, cols int) (Matrix, error) {
	if rows < 0 || cols < 0 {
		return Matrix{}, fmt.Errorf("drift: negative shape [%d, %d]", rows, cols)
	}
	return Matrix{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}, nil
}

// Validate reports an error if the shape is negative or does not match
// len(Data).
func (m Matrix) Validate() error {
	if m.Rows < 0 || m.Cols < 0 {
		return fmt.Errorf("drift: negative shape [%d, %d]", m.Rows, m.Cols)
	}
	if len(m.Data) != m.Rows*m.Cols {
		return fmt.Errorf("drift: matrix [%d, %d] needs %d values, has %d",
			m.Rows, m.Cols, m.Rows*m.Cols, len(m.Data))
	}
	return nil
}

// Row returns row t as a subslice of Data (no copy). It panics like a slice
// expression if t is out of range; callers index only validated matrices.
func (m Matrix) Row(t int) []float32 {
	return m.Data[t*m.Cols : (t+1)*m.Cols : (t+1)*m.Cols]
}

// BatchItem returns item k of a [K, rows, cols] batch stored in data as a
// Matrix view (no copy).
func BatchItem(data []float32, k, rows, cols int) (Matrix, error) {
	if k < 0 || rows < 0 || cols < 0 {
		return Matrix{}, fmt.Errorf("drift: bad batch item k=%d shape [%d, %d]", k, rows, cols)
	}
	n := rows * cols
	if (k+1)*n > len(data) {
		return Matrix{}, fmt.Errorf("drift: batch item %d of [%d, %d] out of range (len %d)", k, rows, cols, len(data))
	}
	return Matrix{Rows: rows, Cols: cols, Data: data[k*n : (k+1)*n : (k+1)*n]}, nil
}

func sameShape(a, b Matrix) error {
	if err := a.Validate(); err != nil {
		return err
	}
	if err := b.Validate(); err != nil {
		return err
	}
	if a.Rows != b.Rows || a.Cols != b.Cols {
		return fmt.Errorf("drift: shape mismatch [%d, %d] vs [%d, %d]", a.Rows, a.Cols, b.Rows, b.Cols)
	}
	return nil
}

var errAlias = errors.New("drift: destination buffer overlaps the source matrix")

// overlaps reports whether two non-empty float32 slices share memory.
func overlaps(a, b []float32) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, a1 := &a[0], &a[len(a)-1]
	b0, b1 := &b[0], &b[len(b)-1]
	return !(ptrLess(a1, b0) || ptrLess(b1, a0))
}

func ptrLess(a, b *float32) bool {
	return uintptr(unsafe.Pointer(a)) < uintptr(unsafe.Pointer(b))
}
