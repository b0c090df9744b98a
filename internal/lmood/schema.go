package lmood

import (
	"bytes"
	_ "embed" // the record schemas
)

// The JSON Schemas (draft 2020-12) of the records are the one definition
// of their format: schema/score.schema.json describes [ScoreRecord] (a line
// of `lmood score --json`), schema/layers.schema.json [LayersRecord] (a line
// of `lmood layers --json`). docs/ links to both files; `lmood serve` builds
// its OpenAPI document's record schemas from them; tests validate real
// output against them.
var (
	//go:embed schema/score.schema.json
	scoreSchema []byte
	//go:embed schema/layers.schema.json
	layersSchema []byte
)

// ScoreSchema returns the JSON Schema of a score record ([ScoreRecord]).
func ScoreSchema() []byte { return bytes.Clone(scoreSchema) }

// LayersSchema returns the JSON Schema of a layers record ([LayersRecord]).
func LayersSchema() []byte { return bytes.Clone(layersSchema) }
