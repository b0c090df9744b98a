package gguf

import (
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// zeroTail is an input of size bytes: head, then zeros. It stands in for a
// large hostile file without writing one.
type zeroTail struct {
	head []byte
	size int64
}

func (z zeroTail) ReadAt(p []byte, off int64) (int, error) {
	if off >= z.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off+int64(n) < z.size {
		i := off + int64(n)
		if i < int64(len(z.head)) {
			p[n] = z.head[i]
		} else {
			p[n] = 0
		}
		n++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestArrayLimits: a metadata array whose declared length the file could
// hold (zero bytes are empty strings) but that no model needs is refused
// before its elements are allocated, and so is metadata whose arrays add up
// past MaxMetadataElems; arrays at the limits are accepted.
func TestArrayLimits(t *testing.T) {
	arrayKV := func(r *raw, key string, et ValueType, n uint64) {
		r.str(key).u32(uint32(ValueArray)).u32(uint32(et)).u64(n)
	}
	tests := []struct {
		name   string
		build  func() zeroTail
		wantOK bool
		want   string
	}{
		{"10M strings", func() zeroTail {
			var r raw
			r.header(0, 1)
			arrayKV(&r, "tokenizer.ggml.tokens", ValueString, 10_000_000)
			return zeroTail{r.Bytes(), int64(r.Len()) + 8*10_000_000}
		}, false, "more than the 4194304"},
		{"MaxArrayLen strings", func() zeroTail {
			var r raw
			r.header(0, 1)
			arrayKV(&r, "tokenizer.ggml.tokens", ValueString, MaxArrayLen)
			return zeroTail{r.Bytes(), int64(r.Len()) + 8*MaxArrayLen}
		}, true, ""},
		{"arrays adding up", func() zeroTail {
			var r raw
			const k = MaxMetadataElems/MaxArrayLen + 1
			r.header(0, k)
			for i := range k {
				arrayKV(&r, "a"+strings.Repeat("x", i), ValueUint8, MaxArrayLen)
				r.zeros(MaxArrayLen)
			}
			return zeroTail{r.Bytes(), int64(r.Len())}
		}, false, "brings the metadata to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.build()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Parse(in, in.size)
			runtime.ReadMemStats(&after)
			if tt.wantOK {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrCorrupt mentioning %q", err, tt.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; tt.name == "10M strings" && alloc > 16<<20 {
				t.Errorf("refusing it allocated %d MB", alloc>>20)
			}
		})
	}
}
