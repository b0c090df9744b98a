package server

import (
	"bytes"
	_ "embed" // the OpenAPI template
	"encoding/json"
	"fmt"
	"sync"

	core "github.com/lmood/lmood/internal/lmood"
)

// openAPITemplate is the hand-written OpenAPI 3.1 description of the API,
// except the record schemas: its ScoreRecord and LayersRecord hold only
// what the server adds to the core's records (ScoreRecord's "groups").
//
//go:embed openapi.json
var openAPITemplate []byte

// recordSchemas names the components of the template that are filled in
// from the core's record schemas, the one definition of the records.
var recordSchemas = map[string]func() []byte{
	"ScoreRecord":  core.ScoreSchema,
	"LayersRecord": core.LayersSchema,
}

// openAPI is the served document, built once.
var openAPI = sync.OnceValues(func() ([]byte, error) { return buildOpenAPI(openAPITemplate) })

// buildOpenAPI returns the OpenAPI document /api/openapi.json serves: the
// template (openapi.json) with each record component replaced by the core's JSON Schema
// of that record (OpenAPI 3.1 schemas are JSON Schema 2020-12), plus the
// properties the template lists for it. A property both define is an
// error: the server would then contradict the record's definition.
func buildOpenAPI(template []byte) ([]byte, error) {
	var doc map[string]any
	if err := decodeJSON(template, &doc); err != nil {
		return nil, fmt.Errorf("server: openapi.json: %w", err)
	}
	comps, _ := doc["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	if schemas == nil {
		return nil, fmt.Errorf("server: openapi.json has no components.schemas")
	}
	for name, schema := range recordSchemas {
		tmpl, ok := schemas[name].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("server: openapi.json has no components.schemas.%s to fill in", name)
		}
		var rec map[string]any
		if err := decodeJSON(schema(), &rec); err != nil {
			return nil, fmt.Errorf("server: schema of %s: %w", name, err)
		}
		// The document is the schemas' resource: no identity or dialect of
		// their own (3.1's default dialect is 2020-12 already).
		delete(rec, "$id")
		delete(rec, "$schema")
		props, _ := rec["properties"].(map[string]any)
		if props == nil {
			return nil, fmt.Errorf("server: schema of %s has no properties", name)
		}
		extra, _ := tmpl["properties"].(map[string]any)
		for p, v := range extra {
			if _, dup := props[p]; dup {
				return nil, fmt.Errorf("server: openapi.json adds %q to %s, which its schema defines already", p, name)
			}
			props[p] = v
		}
		schemas[name] = rec
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("server: encode the OpenAPI document: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeJSON decodes b into v keeping numbers exact (json.Number).
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
