package ollama

// Tests against a real ollama server (scripts/ollama.sh start), named by
// LMOOD_TEST_OLLAMA_HOST. They skip when it is unset, unless
// LMOOD_REQUIRE_ORACLE=1 (then they fail); LMOOD_SKIP_OLLAMA=1 always skips.

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// realClient returns a client for the test server.
func realClient(t *testing.T) *Client {
	t.Helper()
	c, err := New(testutil.OllamaHost(t), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createModel creates model name in the server from a GGUF file and
// returns the file's SHA-256. The model is deleted when the test ends.
func createModel(t *testing.T, c *Client, name, gguf string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sum, err := c.CreateFromFile(ctx, name, gguf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.API().Delete(context.Background(), &api.DeleteRequest{Model: name})
	})
	return sum
}

func TestRealResolveAndImport(t *testing.T) {
	c := realClient(t)
	gguf := testutil.GGUF(t)
	const name = "lmood-test-smollm2:q4_1"
	sum := createModel(t, c, name, gguf)

	n, err := ParseRef("ollama:" + name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Resolve(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resolved %s: arch %s, family %s, %s params, %s, blob %s", m.Name, m.Arch, m.Family, m.ParameterSize, m.Quantization, m.BlobPath)
	if m.Digest != sum || m.Arch != "llama" || !m.Supported() || filepath.Base(m.BlobPath) != "sha256-"+sum {
		t.Fatalf("resolved %+v; want digest %s, arch llama, blob sha256-%s", m, sum, sum)
	}
	if m.Quantization != "Q4_1" || m.ParameterSize == "" {
		t.Errorf("details: quantization %q, parameter size %q; want Q4_1 and a size", m.Quantization, m.ParameterSize)
	}
	if err := m.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}

	st := &store.Store{Root: filepath.Join(t.TempDir(), "models")}
	imp, err := Import(st, m, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	man, err := st.ReadManifest(imp.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !imp.Converted || imp.Name != "ollama-lmood-test-smollm2-q4_1" || man.Source.SHA256 != sum ||
		man.Source.Kind != SourceKind || man.Source.Ref != name || man.Source.GGUF != m.BlobPath {
		t.Fatalf("first import: converted %v as %q, source %+v; want a conversion of sha256 %s", imp.Converted, imp.Name, man.Source, sum)
	}

	// Unchanged weights: reused without converting (manifest untouched).
	again, err := Import(st, m, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Converted || again.Name != imp.Name || !again.Manifest.Created.Equal(man.Created) {
		t.Fatalf("second import: converted %v as %q; want the first conversion reused", again.Converted, again.Name)
	}
	// An explicit name converts (once), then is reused too.
	for i, wantConverted := range []bool{true, false} {
		named, err := Import(st, m, "mine", false, nil)
		if err != nil || named.Converted != wantConverted || named.Name != "mine" {
			t.Fatalf("import --name mine #%d: %+v, %v; want converted=%v", i, named, err, wantConverted)
		}
	}
	// --force converts again.
	forced, err := Import(st, m, "", true, nil)
	if err != nil || !forced.Converted || forced.Manifest.Source.SHA256 != sum {
		t.Fatalf("forced import: %+v, %v", forced, err)
	}

	// The listing shows the model with its details.
	list, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range list {
		if l.Name == name {
			found = true
			if l.Err != nil || l.Digest != sum || l.Arch != "llama" || l.Size == 0 {
				t.Errorf("listed %+v", l)
			}
		}
	}
	if !found {
		t.Errorf("List does not include %s: %+v", name, list)
	}
	if names := Converted(st)[sum]; len(names) != 2 {
		t.Errorf("Converted()[digest] = %v, want the two conversions", names)
	}
}

// TestRealNewWeightsReconvert re-creates a model under the same name with
// other weights, as `ollama pull` of an updated model does.
func TestRealNewWeightsReconvert(t *testing.T) {
	c := realClient(t)
	const name = "lmood-test-tiny:latest"
	st := &store.Store{Root: filepath.Join(t.TempDir(), "models")}
	var prev string
	for i, seed := range []uint64{1, 2} {
		tiny := testutil.DefaultTiny()
		tiny.Seed = seed
		sum := createModel(t, c, name, testutil.WriteTiny(t, tiny))
		if sum == prev {
			t.Fatal("the two tiny models have the same digest")
		}
		prev = sum
		m, err := c.Resolve(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if m.Digest != sum {
			t.Fatalf("version %d: digest %s, want %s", i+1, m.Digest, sum)
		}
		for j, want := range []bool{true, false} {
			imp, err := Import(st, m, "", false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if imp.Converted != want || imp.Name != "ollama-lmood-test-tiny-latest" || imp.Manifest.Source.SHA256 != sum {
				t.Fatalf("version %d, import %d: converted %v as %s from %s; want converted=%v from %s",
					i+1, j+1, imp.Converted, imp.Name, imp.Manifest.Source.SHA256, want, sum)
			}
		}
	}
}

func TestRealUnknownModel(t *testing.T) {
	c := realClient(t)
	_, err := c.Resolve(context.Background(), "lmood-test-no-such-model:latest")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("error = %v, want ErrNotFound", err)
	}
	for _, want := range []string{`"lmood-test-no-such-model:latest"`, c.Host(), "ollama pull lmood-test-no-such-model", "lmood models --ollama"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestRealUnsupportedArch(t *testing.T) {
	c := realClient(t)
	tiny := testutil.DefaultTiny()
	tiny.Arch = "bert"
	const name = "lmood-test-bert:latest"
	sum := createModel(t, c, name, testutil.WriteTiny(t, tiny))
	m, err := c.Resolve(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if m.Arch != "bert" || m.Supported() || m.Digest != sum {
		t.Fatalf("resolved %+v; want an unsupported bert model with digest %s", m, sum)
	}
	st := &store.Store{Root: filepath.Join(t.TempDir(), "models")}
	_, err = Import(st, m, "", false, nil)
	if !errors.Is(err, arch.ErrUnsupported) {
		t.Fatalf("error = %v, want arch.ErrUnsupported", err)
	}
	for _, want := range []string{`"bert"`, name, "gpt2, llama, phi3, qwen2, qwen3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if entries, _ := st.List(); len(entries) != 0 {
		t.Errorf("store has %d models after refusing an unsupported one", len(entries))
	}
}
