package store_test

import (
	"path/filepath"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	. "github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// TestGraphCacheKey: the cached graph's file depends on the output set
// (not its order), so a graph with other outputs is never reused.
func TestGraphCacheKey(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", Source{Kind: "file", Ref: path}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pt := func(s arch.Site, i int) arch.Point { return arch.Point{Site: s, Index: i} }
	long := []arch.Point{}
	for i := 0; i <= 2; i++ {
		long = append(long, pt(arch.SiteResid, i), pt(arch.SiteNorm, i))
	}
	longer := append(append([]arch.Point{}, long...), pt(arch.SiteMLP, 2))
	paths := map[string]string{}
	for _, tc := range []struct {
		name string
		opt  arch.GraphOptions
	}{
		{"resid.1", arch.GraphOptions{Outputs: []arch.Point{arch.Resid(1)}}},
		{"norm.1", arch.GraphOptions{Outputs: []arch.Point{pt(arch.SiteNorm, 1)}}},
		{"attn.1", arch.GraphOptions{Outputs: []arch.Point{pt(arch.SiteAttn, 1)}}},
		{"mlp.1", arch.GraphOptions{Outputs: []arch.Point{pt(arch.SiteMLP, 1)}}},
		{"resid.1+norm.1", arch.GraphOptions{Outputs: []arch.Point{arch.Resid(1), pt(arch.SiteNorm, 1)}}},
		{"logits", arch.GraphOptions{Outputs: []arch.Point{arch.Logits()}}},
		{"head", arch.GraphOptions{Head: true}},
		{"long", arch.GraphOptions{Outputs: long}},
		{"longer", arch.GraphOptions{Outputs: longer}},
	} {
		p, err := m.Graph(tc.opt)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if other, dup := paths[p]; dup {
			t.Errorf("%s and %s share the cached graph %s", tc.name, other, filepath.Base(p))
		}
		paths[p] = tc.name
	}
	a, _ := m.Graph(arch.GraphOptions{Outputs: []arch.Point{pt(arch.SiteNorm, 1), arch.Resid(1)}})
	if paths[a] != "resid.1+norm.1" {
		t.Errorf("the same output set in another order got %s", filepath.Base(a))
	}
	if _, err := m.Graph(arch.GraphOptions{Outputs: []arch.Point{pt(arch.SiteAttn, 0)}}); err == nil {
		t.Error("attn.0 built a graph")
	}
}
