package gguf

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestWriterRoundTrip(t *testing.T) {
	w := sampleWriter()
	data := mustBytes(t, w)
	f, err := ParseBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Alignment != 32 || f.DataOffset%32 != 0 || f.Size != int64(len(data)) {
		t.Errorf("header: version %d alignment %d data offset %d size %d", f.Version, f.Alignment, f.DataOffset, f.Size)
	}
	wantKeys := []string{"general.architecture", "t.u8", "t.i8", "t.u16", "t.i16", "llama.block_count", "t.i32", "t.u64", "t.i64",
		"llama.attention.layer_norm_rms_epsilon", "t.f64", "t.bool", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
		"tokenizer.ggml.scores", "t.u32s", "t.u8s", "t.i64s", "t.f64s", "t.bools", "t.empty", "t.nested"}
	if got := f.Keys(); !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("Keys() = %v\nwant %v", got, wantKeys)
	}
	if f.Architecture() != "llama" {
		t.Errorf("Architecture() = %q", f.Architecture())
	}

	// Typed accessors.
	checkUint := func(key string, want uint64, wantOK bool) {
		t.Helper()
		if got, ok := f.Uint(key); ok != wantOK || (ok && got != want) {
			t.Errorf("Uint(%s) = %d, %v; want %d, %v", key, got, ok, want, wantOK)
		}
	}
	checkUint("t.u8", 250, true)
	checkUint("t.u16", 65000, true)
	checkUint("llama.block_count", 2, true)
	checkUint("t.u64", 1<<63+5, true)
	checkUint("t.i8", 0, false) // negative
	checkUint("t.i64", 0, false)
	checkUint("t.f64", 0, false)
	checkUint("missing", 0, false)
	if v, ok := f.Int("t.i16"); !ok || v != -32000 {
		t.Errorf("Int(t.i16) = %d, %v", v, ok)
	}
	if _, ok := f.Int("t.u64"); ok {
		t.Error("Int accepted a uint64 above MaxInt64")
	}
	if v, ok := f.Float("llama.attention.layer_norm_rms_epsilon"); !ok || v != float64(float32(1e-5)) {
		t.Errorf("Float(eps) = %g, %v", v, ok)
	}
	if v, ok := f.Float("t.f64"); !ok || v != 3.25 {
		t.Errorf("Float(t.f64) = %g, %v", v, ok)
	}
	if v, ok := f.Float("t.i32"); !ok || v != -7 {
		t.Errorf("Float(t.i32) = %g, %v", v, ok)
	}
	if _, ok := f.Float("general.architecture"); ok {
		t.Error("Float accepted a string")
	}
	if v, ok := f.Bool("t.bool"); !ok || !v {
		t.Errorf("Bool = %v, %v", v, ok)
	}
	if _, ok := f.String("t.u8"); ok {
		t.Error("String accepted a uint8")
	}
	if v, ok := f.Strings("tokenizer.ggml.tokens"); !ok || !reflect.DeepEqual(v, []string{"<s>", "</s>", "hello", ""}) {
		t.Errorf("Strings = %q, %v", v, ok)
	}
	if v, ok := f.Int32s("tokenizer.ggml.token_type"); !ok || !reflect.DeepEqual(v, []int32{3, 3, 1, 1}) {
		t.Errorf("Int32s = %v, %v", v, ok)
	}
	if v, ok := f.Int32s("t.u32s"); !ok || !reflect.DeepEqual(v, []int32{1, 2}) {
		t.Errorf("Int32s(u32s) = %v, %v", v, ok)
	}
	if _, ok := f.Int32s("t.i64s"); ok {
		t.Error("Int32s accepted an int64 value that does not fit")
	}
	if v, ok := f.Float32s("tokenizer.ggml.scores"); !ok || !reflect.DeepEqual(v, []float32{0, -1.5, 2, 3}) {
		t.Errorf("Float32s = %v, %v", v, ok)
	}
	if v, ok := f.Float32s("t.f64s"); !ok || !reflect.DeepEqual(v, []float32{0.5}) {
		t.Errorf("Float32s(f64s) = %v, %v", v, ok)
	}
	if _, ok := f.Float32s("tokenizer.ggml.tokens"); ok {
		t.Error("Float32s accepted strings")
	}
	if v, ok := f.Strings("t.empty"); !ok || len(v) != 0 {
		t.Errorf("Strings(empty) = %v, %v", v, ok)
	}
	// Returned slices are copies.
	s, _ := f.Strings("tokenizer.ggml.tokens")
	s[0] = "changed"
	if s2, _ := f.Strings("tokenizer.ggml.tokens"); s2[0] != "<s>" {
		t.Error("Strings returned an alias of internal storage")
	}
	v, _ := f.Value("t.nested")
	if v.Type != ValueArray || v.ElemType != ValueArray || v.Len() != 3 {
		t.Fatalf("nested = %v", v)
	}
	e0, _ := v.Index(0)
	if x, ok := e0.AsInt32s(); !ok || !reflect.DeepEqual(x, []int32{1, 2}) {
		t.Errorf("nested[0] = %v", e0)
	}
	e1, _ := v.Index(1)
	if x, ok := e1.AsStrings(); !ok || !reflect.DeepEqual(x, []string{"x"}) {
		t.Errorf("nested[1] = %v", e1)
	}
	if e2, _ := v.Index(2); e2.Len() != 0 || e2.ElemType != ValueArray {
		t.Errorf("nested[2] = %v", e2)
	}
	if v, _ := f.Value("t.bools"); !reflect.DeepEqual(v.Any(), []bool{true, false}) {
		t.Errorf("bools = %v", v)
	}
	if got := v.String(); got != `[array x 3: [int32 x 2: 1, 2], [string x 1: "x"], [array x 0: ]]` {
		t.Errorf("Value.String() = %s", got)
	}

	// Tensors.
	if len(f.Tensors) != 5 {
		t.Fatalf("%d tensors", len(f.Tensors))
	}
	for _, ti := range f.Tensors {
		if ti.Offset%f.Alignment != 0 {
			t.Errorf("%s: offset %d not aligned", ti.Name, ti.Offset)
		}
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || emb.Type != F32 || !reflect.DeepEqual(emb.Dims, []uint64{4, 3}) || !reflect.DeepEqual(emb.Shape(), []uint64{3, 4}) || emb.NumElements() != 12 {
		t.Fatalf("token_embd = %+v", emb)
	}
	if nb, err := emb.NumBytes(); err != nil || nb != 48 {
		t.Errorf("NumBytes = %d, %v", nb, err)
	}
	readAll := func(name string) []float32 {
		t.Helper()
		ti, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("no tensor %s", name)
		}
		x, err := f.ReadTensorF32(ti)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	if got := readAll("token_embd.weight"); !reflect.DeepEqual(got, seq(12, 0.5)) {
		t.Errorf("F32 = %v", got)
	}
	if got := readAll("blk.0.attn_norm.weight"); !reflect.DeepEqual(got, seq(5, 0.25)) {
		t.Errorf("F16 = %v (values are exactly representable)", got)
	}
	if got := readAll("blk.0.ffn.weight"); !reflect.DeepEqual(got, seq(8, 1)) {
		t.Errorf("BF16 = %v", got)
	}
	if got := readAll("scalar"); !reflect.DeepEqual(got, []float32{42}) {
		t.Errorf("scalar = %v", got)
	}
	q := readAll("blk.0.attn_q.weight")
	want := seq(128, 0.01)
	for i := range q {
		if math.Abs(float64(q[i]-want[i])) > 0.01 {
			t.Errorf("Q8_0[%d] = %g, want ~%g", i, q[i], want[i])
		}
	}
	if _, ok := f.Tensor("nope"); ok {
		t.Error("found a missing tensor")
	}
}

func TestWriterAlignment(t *testing.T) {
	w := NewWriter()
	w.SetAlignment(64)
	w.AddTensorF32("a", []uint64{3}, []float32{1, 2, 3})
	w.AddTensorF32("b", []uint64{1}, []float32{4})
	w.SetAlignment(128) // replaces the value in place
	f, err := ParseBytes(mustBytes(t, w))
	if err != nil {
		t.Fatal(err)
	}
	if f.Alignment != 128 || f.DataOffset%128 != 0 || f.Tensors[1].Offset != 128 {
		t.Errorf("alignment %d data offset %d offsets %d,%d", f.Alignment, f.DataOffset, f.Tensors[0].Offset, f.Tensors[1].Offset)
	}
	if keys := f.Keys(); len(keys) != 1 {
		t.Errorf("keys %v", keys)
	}
	b, _ := f.ReadTensorF32(&f.Tensors[1])
	if len(b) != 1 || b[0] != 4 {
		t.Errorf("b = %v", b)
	}
}

// TestWriterStream checks that a streamed tensor reads back as written,
// with correct offsets for the tensors around it.
func TestWriterStream(t *testing.T) {
	w := NewWriter()
	w.AddTensorF32("before", []uint64{3}, []float32{1, 2, 3})
	want := make([]float32, 1000)
	for i := range want {
		want[i] = float32(i) / 7
	}
	w.AddTensorStream("streamed", []uint64{10, 100}, F32, func(o io.Writer) error {
		for row := 0; row < 100; row++ { // in pieces, as a generator would
			b := make([]byte, 40)
			for j := 0; j < 10; j++ {
				le.PutUint32(b[4*j:], math.Float32bits(want[row*10+j]))
			}
			if _, err := o.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
	w.AddTensorF32("after", []uint64{1}, []float32{9})
	f, err := ParseBytes(mustBytes(t, w))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.ReadTensorF32(&f.Tensors[1])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("streamed tensor reads back differently (first values %v)", got[:5])
	}
	if after, _ := f.ReadTensorF32(&f.Tensors[2]); len(after) != 1 || after[0] != 9 {
		t.Errorf("tensor after the stream reads %v", after)
	}
}

func TestWriterErrors(t *testing.T) {
	cases := []struct {
		name  string
		build func(w *Writer)
		want  string
	}{
		{"duplicate key", func(w *Writer) { w.AddUint8("k", 1); w.AddUint8("k", 2) }, `duplicate metadata key "k"`},
		{"duplicate tensor", func(w *Writer) {
			w.AddTensorF32("t", []uint64{1}, []float32{1})
			w.AddTensorF32("t", []uint64{1}, []float32{1})
		}, `duplicate tensor name "t"`},
		{"length mismatch", func(w *Writer) { w.AddTensorF32("t", []uint64{2, 2}, []float32{1}) }, "hold 4 elements but 1 values"},
		{"too many dims", func(w *Writer) { w.AddTensorF32("t", []uint64{1, 1, 1, 1, 1}, []float32{1}) }, "5 dimensions"},
		{"q8 row", func(w *Writer) { w.AddTensorQ8_0("t", []uint64{16, 2}, make([]float32, 32)) }, "multiple of 32"},
		{"raw size", func(w *Writer) { w.AddTensorRaw("t", []uint64{32}, Q4_0, make([]byte, 17)) }, "needs 18 bytes, got 17"},
		{"raw unknown type", func(w *Writer) { w.AddTensorRaw("t", []uint64{32}, Type(77), nil) }, "type(77)"},
		{"bad alignment", func(w *Writer) { w.SetAlignment(24) }, "not a power of two"},
		{"stream short", func(w *Writer) {
			w.AddTensorStream("t", []uint64{32}, Q4_0, func(o io.Writer) error { _, err := o.Write(make([]byte, 17)); return err })
		}, "wrote 17 bytes, the dims need 18"},
		{"stream long", func(w *Writer) {
			w.AddTensorStream("t", []uint64{32}, Q4_0, func(o io.Writer) error { _, err := o.Write(make([]byte, 19)); return err })
		}, "wrote 19 bytes, the dims need 18"},
		{"stream error", func(w *Writer) {
			w.AddTensorStream("t", []uint64{32}, Q4_0, func(io.Writer) error { return errors.New("no entropy") })
		}, `tensor "t": no entropy`},
		{"stream duplicate", func(w *Writer) {
			w.AddTensorF32("t", []uint64{1}, []float32{1})
			w.AddTensorStream("t", []uint64{1}, F32, func(io.Writer) error { return nil })
		}, `duplicate tensor name "t"`},
		{"bad nested", func(w *Writer) { w.Add("n", ArrayOfArrays([]Value{NewUint8(1)})) }, "element 0 of an array of arrays has type uint8"},
		{"zero value", func(w *Writer) { w.Add("z", Value{}) }, `metadata key "z"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := NewWriter()
			c.build(w)
			_, err := w.Bytes()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if err := w.WriteFile(filepath.Join(t.TempDir(), "x.gguf")); err == nil {
				t.Error("WriteFile succeeded")
			}
		})
	}
}

func TestOpenAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.gguf")
	if err := sampleWriter().WriteFile(path); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ti, _ := f.Tensor("token_embd.weight")
	if x, err := f.ReadTensorF32(ti); err != nil || len(x) != 12 {
		t.Fatalf("read: %v, %v", x, err)
	}
	if raw, err := f.ReadTensorRaw(ti); err != nil || len(raw) != 48 {
		t.Fatalf("raw: %d bytes, %v", len(raw), err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.ReadTensorF32(ti); !errors.Is(err, ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
	if s, ok := f.String("general.architecture"); !ok || s != "llama" {
		t.Error("metadata unavailable after Close")
	}

	if _, err := Open(filepath.Join(t.TempDir(), "missing.gguf")); err == nil || !strings.HasPrefix(err.Error(), "gguf: ") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	os.WriteFile(bad, []byte("GGML not really"), 0o644)
	if _, err := Open(bad); !errors.Is(err, ErrNotGGUF) || !strings.Contains(err.Error(), "bad.gguf") {
		t.Errorf("bad file: %v", err)
	}
}

func TestUnsupportedTensorType(t *testing.T) {
	w := NewWriter()
	w.AddTensorRaw("blk.0.attn_q.weight", []uint64{256}, IQ2_XXS, make([]byte, 66))
	f, err := ParseBytes(mustBytes(t, w))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadTensorF32(&f.Tensors[0])
	want := `gguf: tensor "blk.0.attn_q.weight" has quantization type IQ2_XXS (16), which lmood cannot dequantize (supported: F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, I8, I16, I32, I64, F64, BF16)`
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("error = %v\nwant prefix %s", err, want)
	}
	// Raw bytes are still available.
	if raw, err := f.ReadTensorRaw(&f.Tensors[0]); err != nil || len(raw) != 66 {
		t.Errorf("raw: %d, %v", len(raw), err)
	}

	// A type id unknown to this package parses (its data cannot be sized)
	// but cannot be read.
	var r raw
	r.header(1, 0).tensor("future", []uint64{8}, Type(63), 0).padTo(32).zeros(32)
	f, err = ParseBytes(r.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadTensorF32(&f.Tensors[0]); err == nil || !strings.Contains(err.Error(), `tensor "future" has quantization type type(63) (63)`) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := f.ReadTensorRaw(&f.Tensors[0]); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("raw unknown type: %v", err)
	}
}

func TestPythonWrittenFile(t *testing.T) {
	f, err := Open(filepath.Join("testdata", "pywriter.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]any{
		"general.architecture": "llama",
		"test.u8":              uint8(200),
		"test.i8":              int8(-100),
		"test.u16":             uint16(60000),
		"test.i16":             int16(-30000),
		"test.u32":             uint32(4000000000),
		"test.i32":             int32(-2000000000),
		"test.f32":             float32(0.1),
		"test.u64":             uint64(18000000000000000000),
		"test.i64":             int64(-9000000000000000000),
		"test.f64":             2.5e-300,
		"test.bool_true":       true,
		"test.bool_false":      false,
		"test.string":          "héllo, wörld",
		"test.strings":         []string{"a", "", "ccc"},
		"test.i32s":            []int32{1, -2, 3},
		"test.f32s":            []float32{0.5, -1.25},
		"test.u8s":             []uint8{1, 2, 255},
	}
	for k, w := range want {
		v, ok := f.Value(k)
		if !ok || !reflect.DeepEqual(v.Any(), w) {
			t.Errorf("%s = %#v (%v), want %#v", k, v.Any(), ok, w)
		}
	}
	if keys := f.Keys(); len(keys) != 19 || keys[0] != "general.architecture" || keys[18] != "test.nested" {
		t.Errorf("keys = %v", keys)
	}
	nested, _ := f.Value("test.nested")
	if nested.ElemType != ValueArray || nested.Len() != 2 {
		t.Errorf("nested = %v", nested)
	}
	for _, name := range []string{"F32", "F16", "Q4_1", "Q8_0", "Q6_K"} {
		typ, _ := ParseType(name)
		ti, ok := f.Tensor("t." + name)
		if !ok || ti.Type != typ || !reflect.DeepEqual(ti.Dims, []uint64{512, 2}) {
			t.Fatalf("tensor t.%s = %+v", name, ti)
		}
		got, err := f.ReadTensorF32(ti)
		if err != nil {
			t.Fatal(err)
		}
		_, ref := loadFixture(t, typ)
		compareExact(t, got, ref)
	}
}

// hostile builds malformed files; each case names the error it expects.
func TestParseErrors(t *testing.T) {
	valid := mustBytes(t, sampleWriter())
	cases := []struct {
		name    string
		data    func() []byte
		wantErr error
		want    []string
	}{
		{"empty", func() []byte { return nil }, ErrNotGGUF, []string{"not a GGUF file", "only 0 bytes"}},
		{"bad magic", func() []byte { return append([]byte("GGML"), valid[4:]...) }, ErrNotGGUF, []string{"not a GGUF file", `"GGML"`}},
		{"version 1", func() []byte { var r raw; r.WriteString("GGUF"); r.u32(1).zeros(16); return r.Bytes() }, ErrUnsupportedVersion, []string{"version 1"}},
		{"big endian", func() []byte {
			var r raw
			r.WriteString("GGUF")
			r.Write([]byte{0, 0, 0, 3})
			r.zeros(16)
			return r.Bytes()
		}, ErrUnsupportedVersion, []string{"big-endian"}},
		{"version 9", func() []byte { var r raw; r.WriteString("GGUF"); r.u32(9).zeros(16); return r.Bytes() }, ErrUnsupportedVersion, []string{"version 9"}},
		{"truncated header", func() []byte { return valid[:12] }, ErrTruncated, []string{"tensor count", "at offset 8", "truncated or corrupt"}},
		{"truncated kv count", func() []byte { return valid[:20] }, ErrTruncated, []string{"metadata count", "at offset 16"}},
		{"huge tensor count", func() []byte { var r raw; r.header(1<<60, 0).zeros(100); return r.Bytes() }, ErrTruncated, []string{"declares 1152921504606846976 tensors", "100 bytes remain"}},
		{"huge kv count", func() []byte { var r raw; r.header(0, 1<<62).zeros(100); return r.Bytes() }, ErrTruncated, []string{"declares 4611686018427387904 metadata entries"}},
		{"huge string", func() []byte { var r raw; r.header(0, 1).u64(1 << 50).zeros(20); return r.Bytes() }, ErrTruncated, []string{"metadata entry 0 at offset 24", "declares length 1125899906842624"}},
		{"huge value string", func() []byte {
			var r raw
			r.header(0, 1).str("k").u32(uint32(ValueString)).u64(1 << 50).zeros(20)
			return r.Bytes()
		}, ErrTruncated, []string{`key "k"`, "string at offset 37 declares length 1125899906842624"}},
		{"huge array", func() []byte {
			var r raw
			r.header(0, 1).str("arr").u32(uint32(ValueArray)).u32(uint32(ValueUint32)).u64(1 << 40).zeros(64)
			return r.Bytes()
		}, ErrTruncated, []string{`key "arr"`, "declares 1099511627776 elements of type uint32"}},
		{"huge string array", func() []byte {
			var r raw
			r.header(0, 1).str("arr").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(1 << 40).zeros(64)
			return r.Bytes()
		}, ErrTruncated, []string{"declares 1099511627776 elements of type string"}},
		{"unknown value type", func() []byte { var r raw; r.header(0, 1).str("k").u32(13).zeros(8); return r.Bytes() }, ErrCorrupt, []string{`key "k"`, "unknown value type 13"}},
		{"unknown array element type", func() []byte {
			var r raw
			r.header(0, 1).str("k").u32(uint32(ValueArray)).u32(99).u64(1).zeros(8)
			return r.Bytes()
		}, ErrCorrupt, []string{"unknown element type 99"}},
		{"deep nesting", func() []byte {
			var r raw
			r.header(0, 1).str("k").u32(uint32(ValueArray))
			for range 20 {
				r.u32(uint32(ValueArray)).u64(1)
			}
			r.zeros(16)
			return r.Bytes()
		}, ErrCorrupt, []string{"nested more than 8 levels"}},
		{"duplicate key", func() []byte { var r raw; r.header(0, 2).kvU32("a", 1).kvU32("a", 2); return r.Bytes() }, ErrCorrupt, []string{`duplicate key "a"`}},
		{"bad alignment", func() []byte { var r raw; r.header(0, 1).kvU32("general.alignment", 24); return r.Bytes() }, ErrCorrupt, []string{"general.alignment = 24", "power of two"}},
		{"zero alignment", func() []byte { var r raw; r.header(0, 1).kvU32("general.alignment", 0); return r.Bytes() }, ErrCorrupt, []string{"not a valid alignment"}},
		{"string alignment", func() []byte {
			var r raw
			r.header(0, 1).str("general.alignment").u32(uint32(ValueString)).str("32")
			return r.Bytes()
		}, ErrCorrupt, []string{"not a valid alignment"}},
		{"too many dims", func() []byte {
			var r raw
			r.header(1, 0).tensor("t", []uint64{1, 1, 1, 1, 1}, F32, 0).padTo(32).zeros(32)
			return r.Bytes()
		}, ErrCorrupt, []string{`tensor descriptor 0 ("t") at offset 24`, "n_dims 5 exceeds the maximum of 4"}},
		{"dims overflow", func() []byte {
			var r raw
			r.header(1, 0).tensor("t", []uint64{1 << 32, 1 << 32}, F32, 0).padTo(32).zeros(32)
			return r.Bytes()
		}, ErrCorrupt, []string{"overflow the element count"}},
		{"dim above int64", func() []byte {
			var r raw
			r.header(1, 0).tensor("t", []uint64{1 << 63}, I8, 0).padTo(32).zeros(32)
			return r.Bytes()
		}, ErrCorrupt, []string{"larger than int64"}},
		{"byte size overflow", func() []byte {
			var r raw
			r.header(1, 0).tensor("t", []uint64{1 << 40, 1 << 22}, F32, 0).padTo(32).zeros(32)
			return r.Bytes()
		}, ErrCorrupt, []string{"byte size", "overflows"}},
		{"misaligned offset", func() []byte {
			var r raw
			r.header(1, 0).tensor("t", []uint64{2}, F32, 4).padTo(32).zeros(64)
			return r.Bytes()
		}, ErrCorrupt, []string{`tensor "t"`, "data offset 4 is not a multiple of the alignment 32"}},
		{"data past end", func() []byte {
			var r raw
			r.header(1, 0).tensor("t", []uint64{16}, F32, 0).padTo(32).zeros(60)
			return r.Bytes()
		}, ErrTruncated, []string{`tensor "t"`, "data [0, 64)", "absolute offset 64", "extends past the end of the file (size 124)"}},
		{"offset past end", func() []byte {
			var r raw
			r.header(1, 0).tensor("t", []uint64{1}, F32, 1<<62).padTo(32)
			return r.Bytes()
		}, ErrTruncated, []string{"extends past the end"}},
		{"huge tensor", func() []byte {
			var r raw
			r.header(1, 0).tensor("t", []uint64{1 << 40, 1 << 20}, Q4_0, 0).padTo(32).zeros(32)
			return r.Bytes()
		}, ErrTruncated, []string{"extends past the end"}},
		{"overlap", func() []byte {
			var r raw
			r.header(2, 0).tensor("a", []uint64{16}, F32, 0).tensor("b", []uint64{8}, F32, 32).padTo(32).zeros(128)
			return r.Bytes()
		}, ErrCorrupt, []string{`tensor "b" data [32, 64) overlaps tensor "a" data [0, 64)`}},
		{"duplicate tensor", func() []byte {
			var r raw
			r.header(2, 0).tensor("a", []uint64{1}, F32, 0).tensor("a", []uint64{1}, F32, 32).padTo(32).zeros(64)
			return r.Bytes()
		}, ErrCorrupt, []string{`("a")`, "duplicate tensor name"}},
		{"bad block multiple", func() []byte {
			var r raw
			r.header(1, 0).tensor("q", []uint64{33}, Q4_0, 0).padTo(32).zeros(64)
			return r.Bytes()
		}, ErrCorrupt, []string{"row length 33 is not a multiple of the Q4_0 block size 32"}},
		{"unknown type past end", func() []byte {
			var r raw
			r.header(1, 0).tensor("u", []uint64{1}, Type(63), 4096).padTo(32)
			return r.Bytes()
		}, ErrTruncated, []string{`tensor "u"`, "past the end"}},
		{"truncated in tensor table", func() []byte {
			var r raw
			r.header(1, 0).str("tensor.name").u32(2).u64(4)
			return r.Bytes()
		}, ErrTruncated, []string{`tensor descriptor 0 ("tensor.name")`, "dimension 1", "at offset 55: need 8 bytes but only 0 remain"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseBytes(c.data())
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !errors.Is(err, c.wantErr) {
				t.Errorf("error %q does not wrap %q", err, c.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "gguf: ") {
				t.Errorf("error %q lacks the gguf: prefix", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestTruncationSweep cuts a valid file at every length and checks that
// parsing fails cleanly with a truncation error naming an offset.
func TestTruncationSweep(t *testing.T) {
	data := mustBytes(t, sampleWriter())
	f, err := ParseBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	end := int64(0) // end of the last tensor's data; the rest is padding
	for i := range f.Tensors {
		nb, _ := f.Tensors[i].NumBytes()
		end = max(end, f.TensorDataOffset(&f.Tensors[i])+int64(nb))
	}
	for n := int64(0); n < end; n++ {
		_, err := ParseBytes(data[:n])
		switch {
		case err == nil:
			t.Fatalf("prefix of %d bytes parsed", n)
		case n < 4:
			if !errors.Is(err, ErrNotGGUF) {
				t.Fatalf("prefix %d: %v", n, err)
			}
		case !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "truncated or corrupt") || !strings.Contains(err.Error(), "offset"):
			t.Fatalf("prefix %d: %v", n, err)
		}
	}
}

// shortReader claims a larger size than it can deliver.
type shortReader struct{ data []byte }

func (s shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(s.data)) {
		return 0, errors.New("boom")
	}
	n := copy(p, s.data[off:])
	if n < len(p) {
		return n, errors.New("boom")
	}
	return n, nil
}

func TestReaderShorterThanSize(t *testing.T) {
	data := mustBytes(t, sampleWriter())
	_, err := Parse(shortReader{data[:100]}, int64(len(data)))
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("error %v", err)
	}
	// Metadata fits but tensor data does not.
	f, err := Parse(shortReader{data[:len(data)-40]}, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	last := &f.Tensors[len(f.Tensors)-1]
	if _, err := f.ReadTensorF32(last); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("read error %v", err)
	}
}

// TestReadTensorParallel reads a tensor large enough to be split across
// several workers and chunks and compares with single-call Dequantize.
func TestReadTensorParallel(t *testing.T) {
	for _, typ := range []Type{Q4_K, F32, Q8_0} {
		t.Run(typ.String(), func(t *testing.T) {
			const elems = 1 << 21
			raw := randomBlocks(typ, elems/int(typ.BlockSize()), 3)
			w := NewWriter()
			w.AddTensorF32("small", []uint64{3}, []float32{1, 2, 3})
			w.AddTensorRaw("big", []uint64{4096, elems / 4096}, typ, raw)
			f, err := ParseBytes(mustBytes(t, w))
			if err != nil {
				t.Fatal(err)
			}
			ti, _ := f.Tensor("big")
			got, err := f.ReadTensorF32(ti)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float32, elems)
			dequantizers[typ](want, raw) // serial reference
			compareExact(t, got, want)

			into := make([]float32, elems)
			if err := f.ReadTensorF32Into(ti, into); err != nil {
				t.Fatal(err)
			}
			compareExact(t, into, want)
			if err := f.ReadTensorF32Into(ti, into[:10]); err == nil || !strings.Contains(err.Error(), "destination has 10 elements") {
				t.Errorf("short destination: %v", err)
			}
		})
	}
}
