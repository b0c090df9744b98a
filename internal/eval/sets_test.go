package eval

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseTexts(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		jsonl   bool
		want    []string
		wantErr string
	}{
		{"lines", "a b\n\n# comment\nc d\r\n", false, []string{"a b", "c d"}, ""},
		{"jsonl", `{"text":"one"}` + "\n\n" + `{"text":"# two","id":3}` + "\n", true, []string{"one", "# two"}, ""},
		{"jsonl blank text refused", `{"text":"x"}` + "\n" + `{"text":"  "}`, true, nil, "line 2: \"text\" is empty"},
		{"byte-order mark dropped", "\uFEFFEggplants are purple.\nb\n", false, []string{"Eggplants are purple.", "b"}, ""},
		{"byte-order mark before a comment", "\uFEFF# c\nb\n", false, []string{"b"}, ""},
		{"byte-order mark in jsonl", "\uFEFF" + `{"text":"one"}`, true, []string{"one"}, ""},
		{"byte-order mark kept after line 1", "a\n\uFEFFb\n", false, []string{"a", "\uFEFFb"}, ""},
		{"too long line", strings.Repeat("x", MaxLineBytes+1), false, nil, "lines are limited to 16 MiB"},
		{"jsonl missing field", `{"prompt":"x"}`, true, nil, "no \"text\""},
		{"jsonl bad json", `{"text":`, true, nil, "line 1"},
		{"empty", "\n# only a comment\n", false, nil, "no prompts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTexts(strings.NewReader(tc.in), tc.jsonl)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadTextsByExtension(t *testing.T) {
	dir := t.TempDir()
	txt := filepath.Join(dir, "a.txt")
	js := filepath.Join(dir, "b.JSONL")
	if err := os.WriteFile(txt, []byte(`{"text":"x"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(js, []byte(`{"text":"x"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{{txt, `{"text":"x"}`}, {js, "x"}} {
		got, err := ReadTexts(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: got %q, want %q", tc.path, got, tc.want)
		}
	}
	if _, err := ReadTexts(filepath.Join(dir, "missing.txt")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestParsePairs(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Pair
		wantErr string
	}{
		{"two fields", "# c\na\tb\n\nc\td\r\n", []Pair{{"a", "b"}, {"c", "d"}}, ""},
		{"three fields", "kind\ta\tb\n", []Pair{{"a", "b"}}, ""},
		{"one field", "a b\n", nil, "line 1"},
		{"four fields", "a\tb\tc\td\n", nil, "4 fields"},
		{"empty twin", "a\t \n", nil, "empty field"},
		{"nothing", "# c\n", nil, "no pairs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePairs(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSetName(t *testing.T) {
	for in, want := range map[string]string{
		"prompts/eval/anomaly.tsv": "anomaly",
		"odd.jsonl":                "odd",
		"dir/noext":                "noext",
		".hidden":                  ".hidden",
	} {
		if got := SetName(in); got != want {
			t.Errorf("SetName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseKinds(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"shuffle", []string{"shuffle"}, false},
		{" Mash , shuffle,mash,", []string{"mash", "shuffle"}, false},
		{"all", Kinds(), false},
		{"mash,all", append([]string{"mash"}, slices.DeleteFunc(Kinds(), func(k string) bool { return k == "mash" })...), false},
		{"nonsense", nil, true},
		{",", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseKinds(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseKinds(%q) err = %v", tc.in, err)
			continue
		}
		if !tc.wantErr && !slices.Equal(got, tc.want) {
			t.Errorf("ParseKinds(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCorruptAll(t *testing.T) {
	texts := []string{"The cat sat on the mat today.", "Word", "The dog sat on the rug today."}
	tests := []struct {
		kind    string
		wantSrc []int
	}{
		{KindShuffle, []int{0, 2}}, // a single word cannot be shuffled
		{KindMash, []int{0, 1, 2}},
		{KindScript, []int{0, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			twins, src, err := CorruptAll(tc.kind, texts, 7)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(src, tc.wantSrc) {
				t.Fatalf("src = %v, want %v", src, tc.wantSrc)
			}
			again, _, _ := CorruptAll(tc.kind, texts, 7)
			if !slices.Equal(twins, again) {
				t.Error("not deterministic")
			}
			for i, tw := range twins {
				if tw == texts[src[i]] {
					t.Errorf("twin %d equals its source", i)
				}
			}
		})
	}
	// Equal-length texts must not get identical mash.
	twins, _, err := CorruptAll(KindMash, []string{"abcdefghijklmnop", "ponmlkjihgfedcba"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if twins[0] == twins[1] {
		t.Errorf("equal-length texts got the same mash %q", twins[0])
	}
	if _, _, err := CorruptAll("bogus", texts, 1); err == nil {
		t.Error("unknown kind: no error")
	}
}

func TestItemSeed(t *testing.T) {
	if ItemSeed(1, "a") == ItemSeed(1, "b") || ItemSeed(1, "a") == ItemSeed(2, "a") {
		t.Error("ItemSeed does not separate texts or seeds")
	}
	if ItemSeed(1, "a") != ItemSeed(1, "a") {
		t.Error("ItemSeed is not deterministic")
	}
}

func TestDefaultLayers(t *testing.T) {
	tests := []struct {
		n    int
		want []int
	}{
		{30, []int{5, 10, 15, 20, 25, 30}},
		{12, []int{2, 4, 6, 8, 10, 12}},
		{32, []int{5, 11, 16, 21, 27, 32}},
		{4, []int{1, 2, 3, 4}},
		{1, []int{1}},
	}
	for _, tc := range tests {
		got := DefaultLayers(tc.n)
		if !slices.Equal(got, tc.want) {
			t.Errorf("DefaultLayers(%d) = %v, want %v", tc.n, got, tc.want)
		}
		if !slices.Contains(got, tc.n/2) && tc.n > 1 {
			t.Errorf("DefaultLayers(%d) lacks the middle %d", tc.n, tc.n/2)
		}
	}
}

func TestParseLayers(t *testing.T) {
	tests := []struct {
		spec    string
		n       int
		want    []int
		wantErr bool
	}{
		{"5,10,15", 30, []int{5, 10, 15}, false},
		{"15, 5,5", 30, []int{5, 15}, false},
		{"10-12,0", 30, []int{0, 10, 11, 12}, false},
		{"all", 6, []int{1, 2, 3, 4, 5, 6}, false},
		{"ALL", 3, []int{1, 2, 3}, false},
		{"default", 6, DefaultLayers(6), false},
		{"", 6, DefaultLayers(6), false},
		{"7", 6, nil, true},
		{"-1", 6, nil, true},
		{"3-2", 6, nil, true},
		{"x", 6, nil, true},
		{",", 6, nil, true},
	}
	for _, tc := range tests {
		got, err := ParseLayers(tc.spec, tc.n)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseLayers(%q) err = %v", tc.spec, err)
			continue
		}
		if !tc.wantErr && !slices.Equal(got, tc.want) {
			t.Errorf("ParseLayers(%q) = %v, want %v", tc.spec, got, tc.want)
		}
	}
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestScanLinesReadErrorNotBlamedOnLength(t *testing.T) {
	err := ScanLines(errReader{errors.New("is a directory")}, true, func(int, string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("err = %v, want the read error", err)
	}
	if strings.Contains(err.Error(), "16 MiB") {
		t.Errorf("err = %v: a read error is not about line length", err)
	}
}
