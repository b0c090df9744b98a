package ollama

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/lmood/lmood/internal/fetch"
	"github.com/lmood/lmood/internal/store"
)

// SourceKind is the store.Source.Kind of conversions made from ollama.
const SourceKind = "ollama"

// Imported is the outcome of Import.
type Imported struct {
	Name      string          // the store model name
	Manifest  *store.Manifest // its manifest
	Converted bool            // false when an existing conversion was reused
}

// Import makes model m available in st under name (default StoreName of
// the model), converting its GGUF blob only when needed: a conversion whose
// manifest records the blob's digest is reused unless force is set. The
// digest comes from the blob's file name; the conversion hashes the file
// first and refuses one whose content does not match its name.
//
// With no name given, any conversion of the same digest in the store is
// reused (one imported earlier with --name, or the same GGUF imported as a
// file): the weights are identical. The model is
// checked (architecture, readable weights) before anything is converted.
// The conversion's store.Source is Kind "ollama", Ref the model's name.
//
// Without force, a name holding a model of another source (a file, another
// ollama model) is not replaced (store.ErrExists). The blob's content is
// checked against its digest before the store is touched.
func Import(st *store.Store, m *Model, name string, force bool, p store.ConvertProgress) (*Imported, error) {
	return ImportContext(context.Background(), st, m, name, force, p)
}

// ImportContext is Import that stops, leaving nothing behind, when ctx is
// cancelled.
func ImportContext(ctx context.Context, st *store.Store, m *Model, name string, force bool, p store.ConvertProgress) (*Imported, error) {
	explicit := name != ""
	if !explicit {
		name = StoreName(m.Name)
	}
	if err := store.CheckName(name); err != nil {
		return nil, fmt.Errorf("ollama: %w", err)
	}
	if !force {
		if man, err := st.ReadManifest(name); err == nil && man.Source.SHA256 == m.Digest {
			return &Imported{Name: name, Manifest: man}, nil
		}
		if !explicit {
			if n, man := findDigest(st, m.Digest); man != nil {
				return &Imported{Name: n, Manifest: man}, nil
			}
		}
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	src := store.Source{Kind: SourceKind, Ref: m.Name, SHA256: m.Digest}
	man, converted, err := st.ImportWith(ctx, m.BlobPath, name, src, store.ImportOptions{Force: force, Progress: p})
	if errors.Is(err, fetch.ErrChecksum) {
		return nil, fmt.Errorf("ollama: model %q: the blob %s does not have the SHA-256 %s its name claims (%w); the ollama model store looks corrupt (`ollama pull %s` again); nothing was changed",
			m.Name, m.BlobPath, m.Digest, err, m.Name)
	}
	if err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("ollama: %w: %v", ErrUnreadable, err)
		}
		if errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("ollama: import %s: %w", m.Name, err)
		}
		return nil, fmt.Errorf("ollama: convert %s: %w", m.Name, err)
	}
	return &Imported{Name: name, Manifest: man, Converted: converted}, nil
}

// findDigest returns a usable conversion of the GGUF with the given digest,
// if the store has one.
func findDigest(st *store.Store, digest string) (string, *store.Manifest) {
	entries, err := st.List()
	if err != nil {
		return "", nil
	}
	for _, e := range entries {
		if e.Err == nil && e.Manifest != nil && e.Manifest.Source.SHA256 == digest {
			return e.Name, e.Manifest
		}
	}
	return "", nil
}

// Converted maps GGUF digests to the names of the usable conversions in st
// made from them, for listings.
func Converted(st *store.Store) map[string][]string {
	out := map[string][]string{}
	entries, err := st.List()
	if err != nil {
		return out
	}
	for _, e := range entries {
		if e.Err == nil && e.Manifest != nil && e.Manifest.Source.SHA256 != "" {
			out[e.Manifest.Source.SHA256] = append(out[e.Manifest.Source.SHA256], e.Name)
		}
	}
	return out
}
