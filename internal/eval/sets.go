package eval

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ReadTexts reads evaluation prompts from path. A file ending in .jsonl
// holds one JSON object per line with a "text" string field; any other
// file holds one prompt per line. Blank lines are skipped, and in plain
// text files so are lines starting with '#'. Trailing carriage returns
// are dropped. It fails when the file holds no prompt.
func ReadTexts(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	texts, err := ParseTexts(f, strings.EqualFold(filepath.Ext(path), ".jsonl"))
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", path, err)
	}
	return texts, nil
}

// ErrNoPrompts is returned when an input holds no prompt at all.
var ErrNoPrompts = errors.New("no prompts")

// MaxLineBytes is the longest line ScanLines accepts.
const MaxLineBytes = 16 << 20

// utf8BOM is the byte-order mark some editors put at the start of a file.
const utf8BOM = "\uFEFF"

// ScanLines calls fn with each line of r and its 1-based number: a UTF-8
// byte-order mark at the start of the input dropped (it is not part of the
// first prompt), trailing carriage returns dropped, blank lines skipped,
// and with skipComments so are lines starting with '#'. Lines may be up to
// [MaxLineBytes] long.
func ScanLines(r io.Reader, skipComments bool, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), MaxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if n == 1 {
			line = strings.TrimPrefix(line, utf8BOM)
		}
		if strings.TrimSpace(line) == "" || (skipComments && strings.HasPrefix(line, "#")) {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: %w (lines are limited to %d MiB)", n+1, err, MaxLineBytes>>20)
		}
		return fmt.Errorf("line %d: %w", n+1, err)
	}
	return nil
}

// ParseTexts reads prompts from r: JSON Lines objects with a "text" field
// when jsonl is true, otherwise one prompt per line (see [ReadTexts]).
func ParseTexts(r io.Reader, jsonl bool) ([]string, error) {
	var texts []string
	err := ScanLines(r, !jsonl, func(n int, line string) error {
		if !jsonl {
			texts = append(texts, line)
			return nil
		}
		var rec struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if rec.Text == nil {
			return fmt.Errorf("line %d: no \"text\" field", n)
		}
		if strings.TrimSpace(*rec.Text) == "" {
			// As score does with an empty prompt: say so, never drop it silently.
			return fmt.Errorf("line %d: \"text\" is empty or only whitespace", n)
		}
		texts = append(texts, *rec.Text)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(texts) == 0 {
		return nil, ErrNoPrompts
	}
	return texts, nil
}

// Pair is an in-distribution sentence and its shifted twin.
type Pair struct {
	Plain, Twin string
}

// ReadPairs reads a pairs file: one plain<TAB>twin pair per line, or
// kind<TAB>plain<TAB>twin (the kind is ignored). Blank lines and lines
// starting with '#' are skipped.
func ReadPairs(path string) ([]Pair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	ps, err := ParsePairs(f)
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", path, err)
	}
	return ps, nil
}

// ParsePairs parses pairs from r (see [ReadPairs]).
func ParsePairs(r io.Reader) ([]Pair, error) {
	var ps []Pair
	err := ScanLines(r, true, func(n int, line string) error {
		f := strings.Split(line, "\t")
		switch len(f) {
		case 2:
		case 3:
			f = f[1:]
		default:
			return fmt.Errorf("line %d: want plain<TAB>twin (or kind<TAB>plain<TAB>twin), found %d fields", n, len(f))
		}
		if strings.TrimSpace(f[0]) == "" || strings.TrimSpace(f[1]) == "" {
			return fmt.Errorf("line %d: empty field", n)
		}
		ps = append(ps, Pair{Plain: f[0], Twin: f[1]})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, errors.New("no pairs")
	}
	return ps, nil
}

// SetName names a shifted set after its file: the base name without its
// extension ("prompts/eval/anomaly.tsv" -> "anomaly").
func SetName(path string) string {
	b := filepath.Base(path)
	if n := strings.TrimSuffix(b, filepath.Ext(b)); n != "" {
		return n
	}
	return b
}

// CorruptAll corrupts every text with [Corrupt]. Each text gets its own
// seed, [ItemSeed](seed, text), so that texts do not share one random
// stream (with a shared stream, mash twins of equal-length texts would be
// identical and every mash twin a prefix of the same string). Twins equal
// to their source (nothing to corrupt) are left out; src[i] is the index
// in texts of twins[i].
func CorruptAll(kind string, texts []string, seed uint64) (twins []string, src []int, err error) {
	for i, t := range texts {
		c, err := Corrupt(kind, t, ItemSeed(seed, t))
		if err != nil {
			return nil, nil, err
		}
		if c == t {
			continue
		}
		twins = append(twins, c)
		src = append(src, i)
	}
	return twins, src, nil
}

// ItemSeed derives a per-text seed from a run seed: a SplitMix64 mix of
// seed and the FNV-1a hash of text. It is deterministic across runs and
// platforms.
func ItemSeed(seed uint64, text string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(text); i++ {
		h = (h ^ uint64(text[i])) * 0x100000001b3
	}
	z := seed + h + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// ParseKinds splits a comma-separated list of corruption kinds, checking
// each against [Kinds] and dropping repeats. "all" means every kind.
func ParseKinds(spec string) ([]string, error) {
	var out []string
	for k := range strings.SplitSeq(spec, ",") {
		k = strings.TrimSpace(strings.ToLower(k))
		if k == "" {
			continue
		}
		if k == "all" {
			for _, a := range Kinds() {
				if !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
			continue
		}
		if !slices.Contains(Kinds(), k) {
			return nil, fmt.Errorf("unknown corruption %q (valid: %s, or all)", k, strings.Join(Kinds(), ", "))
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no corruption kind given")
	}
	return out, nil
}

// DefaultLayers returns the hidden states evaluated by default for a
// model with n blocks: six evenly spaced depths round(i*n/6), i = 1..6,
// which always include the middle n/2 and the last block n.
func DefaultLayers(n int) []int {
	var out []int
	for i := 1; i <= 6; i++ {
		h := (2*i*n + 6) / 12 // round(i*n/6)
		if i == 3 {
			h = n / 2 // the middle, as Config.Middle defines it
		}
		if h >= 1 && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		out = []int{n}
	}
	slices.Sort(out)
	return out
}

// ParseLayers parses a hidden-state list for a model with n blocks:
// "all" (1..n), "default" ([DefaultLayers]), or comma-separated indices
// and ranges such as "5,10,15" or "10-20". Indices run 0..n (0 = the
// embeddings). The result is sorted and without repeats.
func ParseLayers(spec string, n int) ([]int, error) {
	spec = strings.TrimSpace(strings.ToLower(spec))
	switch spec {
	case "", "default":
		return DefaultLayers(n), nil
	case "all":
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out, nil
	}
	var out []int
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi := part, part
		if a, b, ok := strings.Cut(part, "-"); ok {
			lo, hi = strings.TrimSpace(a), strings.TrimSpace(b)
		}
		l, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("bad layer %q: want an index, a range A-B, all or default", part)
		}
		h, err := strconv.Atoi(hi)
		if err != nil {
			return nil, fmt.Errorf("bad layer %q: want an index, a range A-B, all or default", part)
		}
		if l > h {
			return nil, fmt.Errorf("bad layer range %q: start after end", part)
		}
		if l < 0 || h > n {
			return nil, fmt.Errorf("layer %q outside 0..%d (0 = embeddings, %d = after the last block)", part, n, n)
		}
		for i := l; i <= h; i++ {
			if !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no layer given")
	}
	slices.Sort(out)
	return out, nil
}
