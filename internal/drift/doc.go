// Package drift holds the pure math of lmood's distortion measurement:
// nudging token embeddings with Gaussian noise, measuring angles between
// clean and nudged tensors, forming distortion ratios and summarising them
// over K nudges.
//
// Vocabulary used throughout:
//
//   - hidden-state index i: 0 is the embedding matrix, i > 0 the residual
//     stream after block i. This package never sees the model; callers hand
//     it matrices and choose the indices.
//   - nudge: one noise draw applied to the clean embeddings E.
//   - input angle: angle(E, E') between clean and nudged embeddings.
//   - drift: angle(H, H') between clean and nudged hidden states.
//   - ratio: drift / input angle (the "distortion ratio").
//
// All tensors are row-major float32 matrices of shape [T, d] (T tokens,
// d width), see [Matrix]. Arithmetic is done in float64 and only the stored
// results are float32.
//
// Angles are computed with Kahan's formula
// 2*atan2(|â-b̂|, |â+b̂|), which equals arccos(clamp(cos, -1, 1)) exactly in
// real arithmetic but stays accurate for the tiny angles produced by small
// nudges (arccos of a cosine near 1 loses about half the significant
// digits). [AngleFromCosDeg] provides the textbook clamped-arccos form.
//
// Randomness is deterministic: every nudge draws from its own PCG stream
// whose 128-bit seed is derived by hashing (seed, prompt key, nudge
// index, token) — see [StreamSeeds]. A nudge therefore does not depend on
// batching order, on how many prompts were processed before it, or on how
// many nudges were drawn for other prompts. (lmood's analyzer uses a hash
// of the prompt's text as its key, so a prompt's score does not depend on
// the other prompts in a run either.)
package drift
