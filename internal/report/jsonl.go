package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// WriteJSONL writes v as one compact JSON object followed by a newline
// (one JSON Lines record), with HTML escaping off so "<", ">" and "&" in
// prompts stay readable. The record is written with a single Write call, so
// nothing partial is written when encoding fails. encoding/json cannot
// represent NaN or infinities: such values make WriteJSONL fail, so callers
// should map them to null (e.g. with pointer fields) first.
func WriteJSONL(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("report: encoding JSON line: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("report: writing JSON line: %w", err)
	}
	return nil
}
