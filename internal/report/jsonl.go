package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"
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
	if _, err := w.Write(escapeInvisible(buf.Bytes())); err != nil {
		return fmt.Errorf("report: writing JSON line: %w", err)
	}
	return nil
}

// escapeInvisible rewrites the characters Sanitize would escape and
// encoding/json leaves raw (C1 controls, bidi and zero-width format
// characters) as \uXXXX escapes, so that JSON Lines shown on a terminal
// cannot reorder or hide text. The JSON value is unchanged: such
// characters only occur inside strings.
func escapeInvisible(b []byte) []byte {
	if utf8.Valid(b) && !bytes.ContainsFunc(b, mustEscape) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if size > 1 && mustEscape(r) {
			for _, u := range utf16.Encode([]rune{r}) {
				out = fmt.Appendf(out, `\u%04x`, u)
			}
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}
