package report

// Swatch is one colour of a Palette: a background and the text colour
// (black or white) that reads on it, as CSS hex.
type Swatch struct {
	BG string `json:"bg"`
	FG string `json:"fg"`
}

// Palette returns n >= 2 colours evenly spaced along scale s, from its low
// end to its high end: the colours the terminal heatmap uses in true-colour
// mode, for front ends that draw the same scale elsewhere (the web page).
func Palette(s Scale, n int) []Swatch {
	n = max(n, 2)
	out := make([]Swatch, n)
	for i := range out {
		c := s.colorAt(float64(i) / float64(n-1))
		out[i] = Swatch{BG: c.Hex(), FG: textOn(c).Hex()}
	}
	return out
}
