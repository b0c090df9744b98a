package report

import "testing"

func TestPaletteMatchesScale(t *testing.T) {
	p := Palette(ScaleSequential, 5)
	// The ends and the middle are the viridis stops; text flips from white
	// on dark purple to black on yellow.
	want := []Swatch{{"#440154", "#ffffff"}, {"#fde725", "#000000"}}
	if p[0] != want[0] || p[4] != want[1] || p[2].BG != "#21918c" {
		t.Errorf("Palette = %v", p)
	}
	if got := Palette(ScaleSequential, 0); len(got) != 2 {
		t.Errorf("Palette(0) has %d colours, want 2", len(got))
	}
}
