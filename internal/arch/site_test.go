package arch_test

import (
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/arch"
)

func TestParseSite(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want arch.Site
		err  string
	}{
		{"resid", arch.SiteResid, ""},
		{" Norm ", arch.SiteNorm, ""},
		{"attn", arch.SiteAttn, ""},
		{"MLP", arch.SiteMLP, ""},
		{"logits", arch.SiteLogits, ""},
		{"hidden", "", `unknown site "hidden" (sites: resid, norm, attn, mlp, logits)`},
		{"", "", "unknown site"},
	} {
		got, err := arch.ParseSite(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSite(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSite(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestPointCheckAndName(t *testing.T) {
	const layers = 30
	for _, tc := range []struct {
		p    arch.Point
		name string // "" = invalid
		err  string
	}{
		{arch.Point{Site: arch.SiteResid, Index: 0}, "resid.0", ""},
		{arch.Point{Site: arch.SiteResid, Index: 30}, "resid.30", ""},
		{arch.Point{Site: arch.SiteResid, Index: 31}, "", "site resid has indices 0..30, got 31"},
		{arch.Point{Site: arch.SiteNorm, Index: 30}, "norm.30", ""},
		{arch.Point{Site: arch.SiteNorm, Index: -1}, "", "site norm has indices 0..30, got -1"},
		{arch.Point{Site: arch.SiteAttn, Index: 1}, "attn.1", ""},
		{arch.Point{Site: arch.SiteAttn, Index: 0}, "", "site attn has indices 1..30, got 0"},
		{arch.Point{Site: arch.SiteMLP, Index: 15}, "mlp.15", ""},
		{arch.Point{Site: arch.SiteMLP, Index: 31}, "", "site mlp has indices 1..30, got 31"},
		{arch.Point{Site: arch.SiteLogits, Index: 7}, "logits", ""},
		{arch.Point{Site: "x", Index: 1}, "", `unknown site "x"`},
	} {
		got, err := tc.p.Check(layers)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: err = %v, want %q", tc.p, err, tc.err)
			}
			continue
		}
		if err != nil || got.Name() != tc.name {
			t.Errorf("%+v: %q, %v; want %q", tc.p, got.Name(), err, tc.name)
		}
	}
	// Logits points compare equal whatever index they were given.
	a, _ := arch.Point{Site: arch.SiteLogits, Index: 7}.Check(layers)
	b, _ := arch.Point{Site: arch.SiteLogits}.Check(layers)
	if a != b {
		t.Errorf("logits points differ: %+v vs %+v", a, b)
	}
}
