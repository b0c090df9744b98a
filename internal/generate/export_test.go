package generate

// SampleForTest draws from logits at temperature temp with every token
// allowed and no nucleus, as the generator does.
func SampleForTest(logits []float32, temp, u float64) int {
	allowed := make([]bool, len(logits))
	for i := range allowed {
		allowed[i] = true
	}
	id, err := newSampler(len(logits), temp, 1, allowed).sample(logits, u)
	if err != nil {
		return -1
	}
	return id
}
