package server

import (
	"bufio"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lmood/lmood/internal/report"
)

// webFS holds the page at / and its assets (no CDN: everything is here).
//
//go:embed web
var webFS embed.FS

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	doc, err := openAPI()
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}

func (s *Server) handlePalette(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, PaletteResponse{Scale: report.ScaleSequential.String(), Colors: report.Palette(report.ScaleSequential, 64)})
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	b, err := webFS.ReadFile("web/index.html")
	if err != nil {
		writeError(w, err)
		return
	}
	setPageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b)
}

func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	sub, _ := fs.Sub(webFS, "web")
	setPageHeaders(w)
	http.StripPrefix("/static/", http.FileServerFS(sub)).ServeHTTP(w, r)
}

// setPageHeaders forbids inline scripts and anything not from this
// server, and framing.
func setPageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
}

// ndjsonWriter writes one JSON value per line and flushes each.
type ndjsonWriter struct {
	w       http.ResponseWriter
	bw      *bufio.Writer
	started bool
}

func newNDJSON(w http.ResponseWriter) *ndjsonWriter {
	return &ndjsonWriter{w: w, bw: bufio.NewWriter(w)}
}

func (n *ndjsonWriter) write(v any) error {
	if !n.started {
		n.w.Header().Set("Content-Type", "application/x-ndjson")
		n.w.WriteHeader(http.StatusOK)
		n.started = true
	}
	enc := json.NewEncoder(n.bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	if err := n.bw.Flush(); err != nil {
		return err
	}
	return http.NewResponseController(n.w).Flush()
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }

// isBlank reports whether s holds nothing but white space.
func isBlank(s string) bool { return strings.TrimFunc(s, unicode.IsSpace) == "" }
