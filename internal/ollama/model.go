package ollama

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/ollama/ollama/api"

	"github.com/lmood/lmood/internal/arch"
	_ "github.com/lmood/lmood/internal/arch/all" // the families Supported knows
	"github.com/lmood/lmood/internal/tokenize"
)

// Prefix marks a model reference as an ollama model: ollama:NAME[:TAG].
const Prefix = "ollama:"

// Model is what lmood needs to know about one model of the server.
type Model struct {
	Host          string   // the server's address, for messages
	Name          string   // as the server lists it, tag included ("qwen2.5:0.5b")
	BlobPath      string   // the GGUF weights, a path on the server's machine
	Digest        string   // hex SHA-256 of the weights, from the blob's name
	Arch          string   // GGUF general.architecture ("llama", "qwen2", ...)
	Family        string   // details.family
	Families      []string // details.families
	ParameterSize string   // details.parameter_size ("494.03M")
	Quantization  string   // details.quantization_level ("Q4_K_M")
	Format        string   // details.format ("gguf")
	Size          int64    // bytes of all layers, from List (0 from Resolve)
	// TokenizerModel and TokenizerPre are the GGUF's tokenizer.ggml.model
	// and tokenizer.ggml.pre, from the server's model info ("" if absent).
	TokenizerModel, TokenizerPre string
}

// TokenizerSupported reports whether lmood implements the model's tokenizer:
// nil if so, else an error wrapping tokenize.ErrUnsupported. A model whose
// server did not report its tokenizer is assumed supported here; the import
// checks the GGUF itself.
func (m *Model) TokenizerSupported() error {
	if m.TokenizerModel == "" {
		return nil
	}
	return tokenize.Supported(m.TokenizerModel, m.TokenizerPre)
}

// Supported reports whether lmood can convert the model's architecture.
func (m *Model) Supported() bool { return arch.IsSupported(m.Arch) }

// ParseRef turns "ollama:NAME[:TAG]" (or a bare "NAME[:TAG]") into the model
// name to ask the server for, with the tag ":latest" made explicit as
// ollama does.
func ParseRef(ref string) (string, error) {
	name := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(ref), Prefix))
	if name == "" {
		return "", fmt.Errorf("ollama: %w %q: give a model name, e.g. ollama:qwen2.5:0.5b (`ollama list` shows them)", ErrBadRef, ref)
	}
	if strings.ContainsAny(name, " \t\r\n\\") || strings.HasPrefix(name, "/") || strings.HasSuffix(name, ":") || strings.HasSuffix(name, "/") {
		return "", fmt.Errorf("ollama: %w %q: want ollama:NAME or ollama:NAME:TAG, e.g. ollama:qwen2.5:0.5b", ErrBadRef, ref)
	}
	last := name[strings.LastIndexByte(name, '/')+1:]
	if !strings.Contains(last, ":") {
		name += ":latest"
	}
	return name, nil
}

var (
	unsafeChars = regexp.MustCompile(`[^a-z0-9._-]+`)
	dashes      = regexp.MustCompile(`-{2,}`)
)

// StoreName is the lmood store name a conversion of the ollama model name
// (as ParseRef returns it) is kept under by default: "ollama-NAME-TAG",
// lower-cased, with anything that is not safe in a directory name replaced.
// Names longer than the store allows are cut and given a short hash of the
// full name, so two long names never share a conversion.
func StoreName(name string) string {
	n := strings.ToLower(name)
	for _, p := range []string{"registry.ollama.ai/library/", "registry.ollama.ai/"} {
		n = strings.TrimPrefix(n, p)
	}
	n = unsafeChars.ReplaceAllString(strings.NewReplacer(":", "-", "/", "-").Replace(n), "-")
	n = strings.Trim(dashes.ReplaceAllString(n, "-"), "-._")
	if n == "" {
		n = "model"
	}
	s := "ollama-" + n
	if len(s) > 64 {
		sum := sha256.Sum256([]byte(strings.ToLower(name)))
		s = strings.TrimRight(s[:55], "-._") + "-" + hex.EncodeToString(sum[:4])
	}
	return s
}

// Resolve asks the server about one model (a name as ParseRef returns it)
// and locates its GGUF weights. It checks neither the architecture nor
// whether the weights are readable: see Check.
func (c *Client) Resolve(ctx context.Context, name string) (*Model, error) {
	var resp *api.ShowResponse
	err := c.call(ctx, "show "+name, func(ctx context.Context) error {
		var err error
		resp, err = c.api.Show(ctx, &api.ShowRequest{Model: name})
		return err
	})
	var se api.StatusError
	if errors.As(err, &se) && se.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("ollama: %w: the server at %s has no model %q.\n  Fix: `ollama pull %s` first; `ollama list` or `lmood models --ollama` shows what it has",
			ErrNotFound, c.host, name, strings.TrimSuffix(name, ":latest"))
	}
	if err != nil {
		return nil, err
	}
	m, err := modelFromShow(name, resp)
	if err != nil {
		return nil, err
	}
	m.Host = c.host
	return m, nil
}

// modelFromShow reads what lmood needs from a show response.
func modelFromShow(name string, resp *api.ShowResponse) (*Model, error) {
	m := &Model{
		Name:          name,
		Family:        resp.Details.Family,
		Families:      resp.Details.Families,
		ParameterSize: resp.Details.ParameterSize,
		Quantization:  resp.Details.QuantizationLevel,
		Format:        resp.Details.Format,
	}
	if a, ok := resp.ModelInfo["general.architecture"].(string); ok && a != "" {
		m.Arch = a
	} else {
		m.Arch = m.Family
	}
	m.TokenizerModel, _ = resp.ModelInfo["tokenizer.ggml.model"].(string)
	m.TokenizerPre, _ = resp.ModelInfo["tokenizer.ggml.pre"].(string)
	path, err := WeightsPath(resp.Modelfile)
	if err != nil {
		return nil, fmt.Errorf("ollama: model %q: %w", name, err)
	}
	digest, err := BlobDigest(path)
	if err != nil {
		return nil, fmt.Errorf("ollama: model %q: %w", name, err)
	}
	m.BlobPath, m.Digest = path, digest
	return m, nil
}

// WeightsPath finds the model's weights in a modelfile as the server
// generates it for show: the first FROM line (later FROM lines name
// projectors, e.g. of vision models). Comment lines are skipped.
func WeightsPath(modelfile string) (string, error) {
	sc := bufio.NewScanner(strings.NewReader(modelfile))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kw, arg, ok := strings.Cut(line, " ")
		if !ok || !strings.EqualFold(kw, "FROM") {
			continue
		}
		arg = strings.TrimSpace(arg)
		if len(arg) >= 2 && arg[0] == '"' && arg[len(arg)-1] == '"' {
			arg = arg[1 : len(arg)-1]
		}
		if arg == "" {
			break
		}
		return arg, nil
	}
	return "", fmt.Errorf("%w: the server's modelfile has no FROM line naming a blob", ErrNoWeights)
}

var blobName = regexp.MustCompile(`^sha256[-:]([0-9a-f]{64})$`)

// BlobDigest returns the hex SHA-256 an ollama blob path carries in its
// file name (…/blobs/sha256-<hex>).
func BlobDigest(path string) (string, error) {
	base := path[strings.LastIndexAny(path, `/\`)+1:]
	sub := blobName.FindStringSubmatch(base)
	if sub == nil {
		return "", fmt.Errorf("%w: FROM %s is not an ollama blob (want …/blobs/sha256-<64 hex digits>)", ErrNoWeights, path)
	}
	return sub[1], nil
}

// Check makes sure lmood can convert the model: its architecture is one
// lmood supports (arch.ErrUnsupported otherwise) and its weights are
// a GGUF file this process can read (ErrUnreadable otherwise).
func (m *Model) Check() error {
	if !m.Supported() {
		name := m.Arch
		if name == "" {
			name = "unknown"
		}
		return fmt.Errorf("ollama: model %q has architecture %q: %w; lmood supports %s (Llama, Mistral, TinyLlama, SmolLM2, Qwen2/3, Gemma 3, Phi-3, GPT-2 and their fine-tunes)",
			m.Name, name, arch.ErrUnsupported, strings.Join(arch.Supported(), ", "))
	}
	f, err := os.Open(m.BlobPath)
	if err == nil {
		var magic [4]byte
		n, rerr := io.ReadFull(f, magic[:])
		f.Close()
		if rerr != nil || string(magic[:]) != "GGUF" {
			return fmt.Errorf("ollama: model %q: %s is not a GGUF file (it starts with %q, %d bytes read); re-pull it with `ollama pull %s`", m.Name, m.BlobPath, magic[:n], n, m.Name)
		}
	}
	if err != nil {
		where := "on another machine, in a container, or running as another user"
		if !isLocal(m.Host) {
			where = "on another machine (" + m.Host + ")"
		}
		return fmt.Errorf("ollama: %w: the server at %s keeps model %q in %s, and this process cannot read it (%v).\n"+
			"  The server is probably %s. Fix: copy that file (%s) to this machine and run `lmood import FILE.gguf --name %s`, or make the ollama model directory readable to you",
			ErrUnreadable, m.Host, m.Name, m.BlobPath, rootPathError(err), where, short(m.Digest), StoreName(m.Name))
	}
	return nil
}

func short(digest string) string {
	if len(digest) > 12 {
		return "sha256-" + digest[:12] + "…"
	}
	return "sha256-" + digest
}

// rootPathError keeps the reason of a *PathError without repeating the path.
func rootPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// isLocal reports whether a server address is this machine.
func isLocal(host string) bool {
	u, err := url.Parse(host)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" || h == "" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// Listed is one model of List: the model, or why it could not be
// described.
type Listed struct {
	Model
	Err error // set when show failed or named no usable blob
}

// List describes every model of the server, sorted by name. Each model is
// shown separately (the list call does not say where weights are); a model
// that cannot be shown is returned with its error rather than failing the
// whole list.
func (c *Client) List(ctx context.Context) ([]Listed, error) {
	var resp *api.ListResponse
	err := c.call(ctx, "list models", func(ctx context.Context) error {
		var err error
		resp, err = c.api.List(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Listed, 0, len(resp.Models))
	for _, lm := range resp.Models {
		name := lm.Name
		if name == "" {
			name = lm.Model
		}
		l := Listed{Model: Model{
			Host: c.host, Name: name, Family: lm.Details.Family, Families: lm.Details.Families,
			ParameterSize: lm.Details.ParameterSize, Quantization: lm.Details.QuantizationLevel,
			Format: lm.Details.Format, Arch: lm.Details.Family, Size: lm.Size,
		}}
		m, err := c.Resolve(ctx, name)
		switch {
		case err == nil:
			m.Size = lm.Size
			l.Model = *m
		case errors.Is(err, ErrUnreachable), errors.Is(err, ErrTimeout), errors.Is(err, context.Canceled):
			// A server that does not answer one model will not answer the
			// next either: stop instead of waiting out every timeout.
			return nil, err
		default:
			l.Err = err
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
