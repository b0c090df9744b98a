package drift

import "math/rand/v2"

// AllTokens is the token key used for streams of whole-prompt nudges, as
// opposed to isolation nudges of a single token.
const AllTokens = -1

// mix64 is the splitmix64 finaliser: a bijective avalanche mixer on 64 bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// StreamSeeds derives the two 64-bit words seeding the PCG stream for one
// nudge. The inputs are absorbed one after another through splitmix64 with
// distinct odd constants, so each (seed, prompt, nudge, token) tuple gets
// its own well-mixed 128-bit state. token is [AllTokens] for whole-prompt
// nudges and the isolated token position otherwise.
//
// Because the stream depends only on this tuple, a nudge's noise does not
// depend on batching, on the order in which nudges are drawn, or on how
// many prompts came before. Distinct tuples give PCG states that are, for
// any practical run length, non-overlapping positions of the 2^128 cycle.
func StreamSeeds(seed uint64, prompt, nudge, token int) (hi, lo uint64) {
	h := mix64(seed ^ 0x6c6d6f6f64000000) // "lmood"
	h = mix64(h ^ (uint64(prompt)*0x9e3779b97f4a7c15 + 0x2545f4914f6cdd1d))
	h = mix64(h ^ (uint64(nudge)*0xc2b2ae3d27d4eb4f + 0x165667b19e3779f9))
	h = mix64(h ^ (uint64(token+1)*0xd6e8feb86659fd93 + 0x27d4eb2f165667c5))
	lo = mix64(h + 0x9e3779b97f4a7c15)
	return h, lo
}

// NewRand returns a generator for one nudge's noise, seeded by
// [StreamSeeds]. Outputs are bit-identical across runs for the same inputs
// and Go release (math/rand/v2's PCG and NormFloat64 are deterministic
// algorithms).
func NewRand(seed uint64, prompt, nudge, token int) *rand.Rand {
	return rand.New(rand.NewPCG(StreamSeeds(seed, prompt, nudge, token)))
}
