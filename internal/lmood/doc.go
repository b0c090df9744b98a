// Package lmood is the core every front end stands on.
//
// The command line (cmd/lmood), an HTTP server and batch jobs all do the
// same few things, and they do them here, in one way:
//
//   - resolve a model reference (a store name, a .gguf path, or
//     ollama:NAME[:TAG]) and open it ([Opener]);
//   - turn request options into analyzer options, refusing bad values with
//     an [OptionError] (errors.Is(err, [ErrUsage]) holds) ([Options]);
//   - open one analyzer over a set of hidden states ([Session]);
//   - reduce an analysis to prompt-level numbers by one rule
//     ([Summarize]) and to the JSON records front ends emit
//     ([ScoreRecord], [LayersRecord], [EvalRecord]);
//   - plan and run an evaluation ([EvalPlan], [RunEval]);
//   - score a corpus resumably, with ids, shards and a setup fingerprint
//     shared by every corpus front end ([Prompt], [OpenOutput],
//     [RunBatch], [Session.SetupID], [CorpusSummary]).
//
// Nothing here writes to a terminal: progress, log lines and notes go
// through [Hooks], and outputs are values or go to writers passed in.
//
// Vocabulary: "layer" in flags, JSON and code (Layer, Layers) is always a
// hidden-state index (0 = the embeddings, i = the residual stream after
// block i); "num_layers" (NumLayers) is the model's block count.
package lmood
