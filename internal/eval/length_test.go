package eval

import (
	"slices"
	"testing"
)

func TestMatchByLength(t *testing.T) {
	tests := []struct {
		name    string
		in, out []int
		tol     int
		want    [][2]int
	}{
		{"exact", []int{5, 3, 5, 7}, []int{5, 5, 5, 3}, 0, [][2]int{{0, 0}, {2, 1}, {1, 3}}},
		{"no match", []int{1, 2}, []int{9}, 0, nil},
		// tol 1: out 4 can take 3 or 5; equal distance prefers the shorter.
		{"tolerance prefers exact then shorter", []int{5, 3, 4}, []int{4, 4, 4}, 1,
			[][2]int{{2, 0}, {1, 1}, {0, 2}}},
		{"negative tol is zero", []int{3}, []int{4}, -2, nil},
		{"empty", nil, nil, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := MatchByLengthTol(tc.in, tc.out, tc.tol)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if tc.tol == 0 && !slices.Equal(MatchByLength(tc.in, tc.out), got) {
				t.Fatal("MatchByLength differs from tol 0")
			}
			used := map[int]bool{}
			for _, p := range got {
				if used[p[0]] {
					t.Fatalf("in item %d used twice", p[0])
				}
				used[p[0]] = true
				if d := tc.in[p[0]] - tc.out[p[1]]; max(d, -d) > max(tc.tol, 0) {
					t.Fatalf("pair %v out of tolerance", p)
				}
			}
		})
	}
}

func TestBinnedAUROC(t *testing.T) {
	// Length fully explains the score: long items score high, and the
	// shifted items are longer. Raw AUROC is 1, within each length bin the
	// score carries no information (all tied) -> 0.5.
	pos := []float64{10, 10, 20, 20}
	posL := []int{10, 10, 20, 20}
	neg := []float64{10, 0, 0}
	negL := []int{10, 0, 0}
	// Per-length bins: len 0 (neg only), 10 (pos 2, neg 1: all tied),
	// 20 (pos only). Only the length-10 bin counts: AUROC 0.5, weight 2.
	res, err := BinnedAUROC(pos, neg, posL, negL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.AUROC != 0.5 || res.Pairs != 2 || res.Skipped != 4 || len(res.Bins) != 3 {
		t.Fatalf("exact bins: %+v", res)
	}
	// Edges [0,15) and [15,25): bin 1 has pos {10,10} vs neg {10,0,0}:
	// pairs 2*3 = 6, wins 2*2 = 4, ties 2 -> (4+1)/6. Bin 2 has no neg.
	res, err = BinnedAUROC(pos, neg, posL, negL, []int{0, 15, 25})
	if err != nil {
		t.Fatal(err)
	}
	if !near(res.AUROC, 5.0/6) || res.Pairs != 6 || res.Skipped != 2 {
		t.Fatalf("edge bins: %+v", res)
	}
	// Two defined bins weighted by pos*neg:
	// bin [0,5): pos {1} neg {0, 2} -> 1/2, weight 2;
	// bin [5,10): pos {3, 4} neg {1} -> 1, weight 2; total (1 + 2)/4.
	res, err = BinnedAUROC([]float64{1, 3, 4}, []float64{0, 2, 1}, []int{1, 6, 7}, []int{2, 3, 8}, []int{0, 5, 10})
	if err != nil || !near(res.AUROC, 0.75) {
		t.Fatalf("weighted: %+v %v", res, err)
	}
	for _, bad := range [][]int{{5}, {0, 0}, {3, 1}} {
		if _, err := BinnedAUROC(pos, neg, posL, negL, bad); err == nil {
			t.Errorf("edges %v accepted", bad)
		}
	}
	if _, err := BinnedAUROC(pos, neg, posL[:1], negL, nil); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, err := BinnedAUROC([]float64{1}, []float64{1}, []int{1}, []int{2}, nil); err == nil {
		t.Error("no shared bin accepted")
	}
}
