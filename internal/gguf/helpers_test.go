package gguf

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// raw assembles GGUF bytes by hand, for malformed-input tests.
type raw struct{ bytes.Buffer }

func (r *raw) u32(v uint32) *raw { r.Write(binary.LittleEndian.AppendUint32(nil, v)); return r }
func (r *raw) u64(v uint64) *raw { r.Write(binary.LittleEndian.AppendUint64(nil, v)); return r }
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.WriteString(s); return r }

// header writes magic, version 3 and the counts.
func (r *raw) header(tensors, kvs uint64) *raw {
	r.WriteString("GGUF")
	return r.u32(3).u64(tensors).u64(kvs)
}

// kvU32 writes a uint32 metadata entry.
func (r *raw) kvU32(key string, v uint32) *raw {
	return r.str(key).u32(uint32(ValueUint32)).u32(v)
}

// tensor writes a tensor descriptor.
func (r *raw) tensor(name string, dims []uint64, typ Type, off uint64) *raw {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	return r.u32(uint32(typ)).u64(off)
}

// padTo pads with zeros to a multiple of align.
func (r *raw) padTo(align int) *raw {
	for r.Len()%align != 0 {
		r.WriteByte(0)
	}
	return r
}

// zeros appends n zero bytes.
func (r *raw) zeros(n int) *raw { r.Write(make([]byte, n)); return r }

// sampleWriter returns a Writer exercising every metadata type and several
// tensor types.
func sampleWriter() *Writer {
	w := NewWriter()
	w.AddString("general.architecture", "llama")
	w.AddUint8("t.u8", 250)
	w.AddInt8("t.i8", -5)
	w.AddUint16("t.u16", 65000)
	w.AddInt16("t.i16", -32000)
	w.AddUint32("llama.block_count", 2)
	w.AddInt32("t.i32", -7)
	w.AddUint64("t.u64", 1<<63+5)
	w.AddInt64("t.i64", -1<<40)
	w.AddFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5)
	w.AddFloat64("t.f64", 3.25)
	w.AddBool("t.bool", true)
	w.AddStrings("tokenizer.ggml.tokens", []string{"<s>", "</s>", "hello", ""})
	w.AddInt32s("tokenizer.ggml.token_type", []int32{3, 3, 1, 1})
	w.AddFloat32s("tokenizer.ggml.scores", []float32{0, -1.5, 2, 3})
	w.AddUint32s("t.u32s", []uint32{1, 2})
	w.Add("t.u8s", ArrayOf([]uint8{1, 2, 3}))
	w.Add("t.i64s", ArrayOf([]int64{-1, 1 << 40}))
	w.Add("t.f64s", ArrayOf([]float64{0.5}))
	w.Add("t.bools", ArrayOf([]bool{true, false}))
	w.Add("t.empty", ArrayOf([]string{}))
	w.Add("t.nested", ArrayOfArrays([]Value{ArrayOf([]int32{1, 2}), ArrayOf([]string{"x"}), ArrayOfArrays(nil)}))
	w.AddTensorF32("token_embd.weight", []uint64{4, 3}, seq(12, 0.5))
	w.AddTensorF16("blk.0.attn_norm.weight", []uint64{5}, seq(5, 0.25))
	w.AddTensorBF16("blk.0.ffn.weight", []uint64{2, 2, 2}, seq(8, 1))
	w.AddTensorQ8_0("blk.0.attn_q.weight", []uint64{64, 2}, seq(128, 0.01))
	w.AddTensorF32("scalar", nil, []float32{42})
	return w
}

func seq(n int, step float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(i-n/2) * step
	}
	return s
}

func mustBytes(t testing.TB, w *Writer) []byte {
	t.Helper()
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
