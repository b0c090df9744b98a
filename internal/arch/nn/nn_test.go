package nn

import (
	"reflect"
	"strings"
	"testing"
)

func TestTensorsPrepare(t *testing.T) {
	ts := Tensors{
		{Name: "w", Dims: []int{3, 2}},               // y = W x: in 3, out 2; GGUF row-major [out, in]
		{Name: "emb", Dims: []int{2, 3}, Kind: Rows}, // dim 2, 3 rows
		{Name: "b", Dims: []int{2}, Kind: Vector},
	}
	tests := []struct {
		name      string
		dims      []uint64
		data      []float32
		want      []float32
		wantShape []int64
	}{
		// rows (out) [1 2 3], [4 5 6] become columns of [in, out].
		{"w", []uint64{3, 2}, []float32{1, 2, 3, 4, 5, 6}, []float32{1, 4, 2, 5, 3, 6}, []int64{3, 2}},
		{"emb", []uint64{2, 3}, []float32{1, 2, 3, 4, 5, 6}, []float32{1, 2, 3, 4, 5, 6}, []int64{3, 2}},
		{"b", []uint64{2}, []float32{7, 8}, []float32{7, 8}, []int64{2}},
	}
	for _, tc := range tests {
		got, shape, err := ts.Prepare("x", tc.name, tc.dims, tc.data, "test")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(shape, tc.wantShape) {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, got, shape, tc.want, tc.wantShape)
		}
	}
	if _, _, err := ts.Prepare("x", "w", []uint64{2, 3}, make([]float32, 6), "the metadata"); err == nil || !strings.Contains(err.Error(), "tensor w has dims [2 3], the metadata says [3 2] (the metadata)") {
		t.Errorf("wrong dims: err = %v", err)
	}
	if _, _, err := ts.Prepare("x", "nope", []uint64{2}, make([]float32, 2), ""); err == nil {
		t.Error("an unknown tensor was prepared")
	}
	if got := ts.Params(); got != 6+6+2 {
		t.Errorf("Params = %d, want 14", got)
	}
}

// meta is a map-backed arch.Metadata.
type meta map[string]any

func (m meta) String(k string) (string, bool) { v, ok := m[k].(string); return v, ok }
func (m meta) Uint(k string) (uint64, bool)   { v, ok := m[k].(uint64); return v, ok }
func (m meta) Float(k string) (float64, bool) { v, ok := m[k].(float64); return v, ok }
func (m meta) Bool(k string) (bool, bool)     { v, ok := m[k].(bool); return v, ok }

func TestReadRope(t *testing.T) {
	tests := []struct {
		name string
		md   meta
		hd   int
		base float64
		err  string
	}{
		{"default base", meta{}, 16, 10000, ""},
		{"stored base", meta{"a.rope.freq_base": 5e5}, 16, 5e5, ""},
		{"none scaling", meta{"a.rope.scaling.type": "none"}, 16, 10000, ""},
		{"yarn", meta{"a.rope.scaling.type": "yarn"}, 16, 0, `rope scaling "yarn"`},
		{"partial", meta{"a.rope.dimension_count": uint64(8)}, 16, 0, "partial rotary"},
		{"odd head", meta{}, 15, 0, "odd"},
		{"base 1", meta{"a.rope.freq_base": 1.0}, 16, 0, "a.rope.freq_base = 1"},
	}
	for _, tc := range tests {
		base, err := ReadRope(tc.md, "a", tc.hd, 10000)
		if tc.err == "" {
			if err != nil || base != tc.base {
				t.Errorf("%s: base %g err %v, want %g", tc.name, base, err, tc.base)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.err)
		}
	}
}

func TestUnmarshal(t *testing.T) {
	type config struct {
		Hyper
		Eps float64 `json:"eps"`
	}
	ok := `{"arch":"fam","layers":2,"dim":8,"heads":2,"kv_heads":1,"head_dim":4,"ffn":16,"vocab":10,"context_length":32,"eps":0.5}`
	for _, tc := range []struct {
		name, data, wantErr string
	}{
		{"valid", ok, ""},
		{"other arch", strings.Replace(ok, `"fam"`, `"other"`, 1), `architecture "other"`},
		{"bad size", strings.Replace(ok, `"layers":2`, `"layers":0`, 1), "block_count"},
		{"not json", "{", "unexpected end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c config
			err := Unmarshal([]byte(tc.data), "fam", &c, &c.Hyper)
			if tc.wantErr == "" {
				if err != nil || c.Layers != 2 || c.HeadDim != 4 || c.Eps != 0.5 {
					t.Fatalf("Unmarshal = %+v, %v; want the stored values", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Unmarshal error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
