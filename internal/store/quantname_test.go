package store

import (
	"testing"

	"github.com/lmood/lmood/internal/gguf"
)

// TestQuantizationName: a file's quantization is named after its
// general.file_type (the quantizer's mix), not after whichever tensor type
// happens to hold most elements; without a known file type the dominant
// type names it.
func TestQuantizationName(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fileType int64 // -1: no general.file_type
		want     string
	}{
		{"Q4_K_M mix with a large Q8_0 embedding", 15, "Q4_K_M"},
		{"Q4_1", 3, "Q4_1"},
		{"no file type: the dominant tensor type", -1, "Q8_0"},
		{"unknown file type: the dominant tensor type", 99, "Q8_0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := gguf.NewWriter()
			w.AddString("general.architecture", "llama")
			if tc.fileType >= 0 {
				w.AddUint32("general.file_type", uint32(tc.fileType))
			}
			// The Q8_0 embedding (64 rows × 32) outnumbers the F16 matrix
			// (32 × 32), as Gemma 3's 262k-row Q8_0 embedding outnumbers its
			// Q4_K weights.
			w.AddTensorQ8_0("token_embd.weight", []uint64{32, 64}, make([]float32, 32*64))
			w.AddTensorF16("blk.0.attn_q.weight", []uint64{32, 32}, make([]float32, 32*32))
			b, err := w.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			f, err := gguf.ParseBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := quantizationName(f); got != tc.want {
				t.Errorf("quantizationName = %q, want %q", got, tc.want)
			}
		})
	}
}
