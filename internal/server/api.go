package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/report"
)

// ScoreRequest is the body of POST /api/score and POST /api/layers.
//
// Give one prompt in Prompt or several in Prompts (not both). Options
// are the analysis options of the CLI's flags under their JSON names
// (samples, sigma, seed, noise, direction, isolate, include_first,
// max_tokens, aggregate, surprisal, site, precision_target,
// matmul_accuracy, batch_memory); an option left out takes the CLI's
// default, except max_tokens, whose default and ceiling is the server's
// limit.
//
// Responses: one prompt without "stream": true gets one JSON object (the
// record `lmood score --json` writes); Prompts, or "stream": true, get
// NDJSON (application/x-ndjson): one record per line, in input order,
// each written as soon as it is ready. Prompts with "stream": false gets
// one JSON object {"records": [...]}.
type ScoreRequest struct {
	// Model is a model name listed by GET /api/models ("" = the server's
	// default model).
	Model   string   `json:"model"`
	Prompt  *string  `json:"prompt"`
	Prompts []string `json:"prompts"`
	// Layer is the hidden state to score (score only; nil or -1 = the
	// model's middle).
	Layer   *int         `json:"layer"`
	Stream  *bool        `json:"stream"`
	Options core.Options `json:"options"`
	// Groups adds "groups" to score records (see GroupedRecord).
	Groups bool `json:"groups"`
}

// GroupedRecord is a score record with display groups, answered when the
// request sets "groups": true (the web page does). Tokens keeps one entry
// per token; Groups joins byte-level tokens that split a multi-byte
// character into that character (report.GroupTokens), so a reader can show
// text, not \xd0 pieces.
type GroupedRecord struct {
	core.ScoreRecord
	Groups []TokenGroup `json:"groups"`
}

// TokenGroup is tokens [start, end) shown as text, with the MEAN of their
// ratio and OOD score (and of their surprisal, when there is one).
type TokenGroup struct {
	Start     int      `json:"start"`
	End       int      `json:"end"`
	Text      string   `json:"text"`
	Ratio     *float64 `json:"ratio"`
	OOD       *float64 `json:"ood"`
	Surprisal *float64 `json:"surprisal,omitempty"`
}

// groupTokens groups a record's tokens for display.
func groupTokens(toks []core.TokenRecord) []TokenGroup {
	texts := make([]string, len(toks))
	for i, t := range toks {
		texts[i] = t.Text
	}
	out := []TokenGroup{}
	for _, g := range report.GroupTokens(texts) {
		var ratio, ood, sur []float64
		for _, t := range toks[g.Start:g.End] {
			ratio, ood = append(ratio, t.Ratio), append(ood, t.OOD)
			if t.Surprisal != nil {
				sur = append(sur, *t.Surprisal)
			}
		}
		tg := TokenGroup{Start: g.Start, End: g.End, Text: g.Text, Ratio: core.FinitePtr(report.MeanDefined(ratio)), OOD: core.FinitePtr(report.MeanDefined(ood))}
		if len(sur) > 0 {
			tg.Surprisal = core.FinitePtr(report.MeanDefined(sur))
		}
		out = append(out, tg)
	}
	return out
}

// PaletteResponse is the body of GET /api/palette: the terminal heatmap's
// colour scale, low to high, for the web page.
type PaletteResponse struct {
	Scale  string          `json:"scale"`
	Colors []report.Swatch `json:"colors"`
}

// RecordsResponse is the body of a non-streamed many-prompt response.
type RecordsResponse[T any] struct {
	Records []T `json:"records"`
}

// ErrorResponse is the body of every error: a message, and the request
// field at fault when there is one ("options.samples", "prompts[2]").
type ErrorResponse struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// ModelInfo is one entry of GET /api/models.
type ModelInfo struct {
	Name         string `json:"name"`
	Default      bool   `json:"default"`
	Architecture string `json:"architecture,omitempty"`
	NumLayers    int    `json:"num_layers"`
	MiddleLayer  int    `json:"middle_layer"`
	Context      int    `json:"context_length"`
	Error        string `json:"error,omitempty"`
}

// ModelsResponse is the body of GET /api/models.
type ModelsResponse struct {
	Models []ModelInfo `json:"models"`
}

// VersionResponse is the body of GET /api/version.
type VersionResponse struct {
	Version string `json:"version"`
}

// apiError is an error answered with an HTTP status and a field.
type apiError struct {
	status int
	field  string
	err    error
	// retryAfter, when positive, is sent as Retry-After (seconds).
	retryAfter int
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

// badRequest is a 400 naming field.
func badRequest(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, field: field, err: fmt.Errorf(format, args...)}
}

// optionField names a core option error's field in the JSON request
// ("options.max_tokens"; "layer" is a top-level field).
func optionField(err error) (string, bool) {
	var oe *core.OptionError
	if !errors.As(err, &oe) {
		return "", false
	}
	name := strings.ReplaceAll(oe.Option, "-", "_")
	if name == "layer" {
		return name, true
	}
	return "options." + name, true
}

// decodeRequest reads a JSON body (whatever the Content-Type, as ollama
// does, so `curl -d` works) of at most maxBody bytes into req
// (pre-filled with defaults): unknown fields, trailing data, wrong types
// and invalid UTF-8 inside prompts are refused with a 400 naming the field.
func decodeRequest(w http.ResponseWriter, r *http.Request, maxBody int64, req *ScoreRequest) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, err: fmt.Errorf("request body is larger than the server's limit of %d bytes (--max-body)", maxBody)}
		}
		return badRequest("", "reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "empty request body: send a JSON object such as {\"prompt\": \"...\"}")
	}
	if !utf8.Valid(body) {
		return invalidUTF8(body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("", "unexpected data after the JSON object")
	}
	return nil
}

// invalidUTF8 names the prompt that holds invalid UTF-8 (encoding/json
// would silently replace those bytes with U+FFFD).
func invalidUTF8(body []byte) *apiError {
	var raw struct {
		Prompt  json.RawMessage   `json:"prompt"`
		Prompts []json.RawMessage `json:"prompts"`
	}
	if json.Unmarshal(body, &raw) == nil {
		if !utf8.Valid(raw.Prompt) {
			return badRequest("prompt", "prompt is not valid UTF-8")
		}
		for i, p := range raw.Prompts {
			if !utf8.Valid(p) {
				return badRequest(fmt.Sprintf("prompts[%d]", i), "prompts[%d] is not valid UTF-8", i)
			}
		}
	}
	return badRequest("", "request body is not valid UTF-8")
}

// jsonError turns a decoding error into a 400 naming the field.
func jsonError(err error) *apiError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest("", "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return badRequest("", "the request must be a JSON object, not a JSON %s", te.Value)
		}
		return badRequest(field, "%s: want %s, got a JSON %s", field, jsonType(te.Type.String()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return badRequest("", "malformed JSON: the body ends early")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return badRequest(f, "unknown field %q (see /api/openapi.json)", f)
	}
	return badRequest("", "malformed JSON: %v", err)
}

// jsonType describes a Go type to a JSON client.
func jsonType(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "string") && strings.HasPrefix(goType, "[]"):
		return "an array of strings"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "true or false"
	}
	return "an object"
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeError answers with an error's status (500 unless it is an
// *apiError) and an ErrorResponse.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, err: err}
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(ae.retryAfter))
	}
	writeJSON(w, ae.status, ErrorResponse{Error: ae.err.Error(), Field: ae.field})
}
