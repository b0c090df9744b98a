package lmood

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePromptLine(t *testing.T) {
	tests := []struct {
		name, line string
		format     InputFormat
		wantID     string
		wantText   string
		skip       bool
		wantErr    string
	}{
		{"text", "Eggplants are purple.", FormatText, string(TextID("Eggplants are purple.")), "Eggplants are purple.", false, ""},
		{"text CR and BOM", "\uFEFFhello\r", FormatText, string(TextID("hello")), "hello", false, ""},
		{"text comment", "# note", FormatText, "", "", true, ""},
		{"text blank", "   ", FormatText, "", "", true, ""},
		{"jsonl number id", `{"id": 17, "text": "a b"}`, FormatJSONL, "17", "a b", false, ""},
		{"jsonl string id", `{"text": "a", "id": "doc-1"}`, FormatJSONL, `"doc-1"`, "a", false, ""},
		{"jsonl no id", `{"text": "a"}`, FormatJSONL, string(TextID("a")), "a", false, ""},
		{"jsonl null id", `{"text": "a", "id": null}`, FormatJSONL, string(TextID("a")), "a", false, ""},
		{"jsonl hash line is a prompt", `{"text": "# not a comment"}`, FormatJSONL, string(TextID("# not a comment")), "# not a comment", false, ""},
		{"jsonl empty text kept (scored as an error record)", `{"id": 1, "text": ""}`, FormatJSONL, "1", "", false, ""},
		{"jsonl object id", `{"id": {"a": 1}, "text": "a"}`, FormatJSONL, "", "", false, "must be a string or a number"},
		{"jsonl no text", `{"id": 1}`, FormatJSONL, "", "", false, `no "text"`},
		{"jsonl not json", `hello`, FormatJSONL, "", "", false, "not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, skip, err := ParsePromptLine(tc.line, 3, tc.format)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "line 3") {
					t.Fatalf("err = %v, want one naming line 3 and containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || skip != tc.skip {
				t.Fatalf("skip %v, err %v", skip, err)
			}
			if skip {
				return
			}
			if string(p.ID) != tc.wantID || p.Text != tc.wantText || p.Line != 3 {
				t.Errorf("got %s %q line %d, want %s %q", p.ID, p.Text, p.Line, tc.wantID, tc.wantText)
			}
		})
	}
}

func TestTextID(t *testing.T) {
	a, b := TextID("x"), TextID("y")
	if string(a) == string(b) || len(a) != 18 || string(TextID("x")) != string(a) {
		t.Errorf("TextID: %s %s", a, b)
	}
	var s string
	if err := json.Unmarshal(a, &s); err != nil {
		t.Errorf("TextID is not a JSON string: %v", err)
	}
}

func TestReadCorpus(t *testing.T) {
	ps, dups, err := ReadCorpus(strings.NewReader("a\n\nb\na\n# c\n"), FormatText)
	if err != nil || len(ps) != 2 || dups != 1 || ps[0].Text != "a" || ps[1].Line != 3 {
		t.Errorf("text: %+v dups %d err %v", ps, dups, err)
	}
	_, _, err = ReadCorpus(strings.NewReader(`{"id":1,"text":"a"}`+"\n"+`{"id":1,"text":"b"}`+"\n"), FormatJSONL)
	if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "line 2: id 1") {
		t.Errorf("conflicting ids: %v", err)
	}
	if _, _, err := ReadCorpus(strings.NewReader("# only\n"), FormatText); !errors.Is(err, ErrUsage) {
		t.Errorf("empty corpus: %v", err)
	}
}

func TestParseInputFormat(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		want       InputFormat
		err        bool
	}{
		{"auto", "x.jsonl", FormatJSONL, false},
		{"auto", "X.NDJSON", FormatJSONL, false},
		{"", "x.txt", FormatText, false},
		{"text", "x.jsonl", FormatText, false},
		{"jsonl", "x.txt", FormatJSONL, false},
		{"csv", "x", 0, true},
	} {
		got, err := ParseInputFormat(tc.name, tc.path)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseInputFormat(%q, %q) = %v, %v", tc.name, tc.path, got, err)
		}
	}
}

func TestShards(t *testing.T) {
	for _, s := range []string{"0/0", "4/4", "-1/2", "1", "a/b", "1/2/3"} {
		if _, err := ParseShard(s); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseShard(%q) = %v, want a usage error", s, err)
		}
	}
	const n = 4
	count := make([]int, n)
	for k := 0; k < 1000; k++ {
		id := TextID(fmt.Sprint(k))
		hits := 0
		for i := 0; i < n; i++ {
			sh, err := ParseShard(fmt.Sprintf("%d/%d", i, n))
			if err != nil {
				t.Fatal(err)
			}
			if sh.Has(id) {
				hits++
				count[i]++
			}
		}
		if hits != 1 {
			t.Fatalf("id %s is in %d shards, want exactly 1", id, hits)
		}
		if !(Shard{}).Has(id) {
			t.Fatal("the zero shard must hold everything")
		}
	}
	for i, c := range count {
		if c < 180 || c > 320 {
			t.Errorf("shard %d holds %d of 1000 ids: the split is lopsided", i, c)
		}
	}
}

func TestBatchProgress(t *testing.T) {
	p := BatchProgress{Done: 10, Total: 30, Elapsed: 5 * time.Second}
	if p.Rate() != 2 || p.ETA() != 10*time.Second {
		t.Errorf("rate %v eta %v", p.Rate(), p.ETA())
	}
	if (BatchProgress{Total: 3}).ETA() != -1 {
		t.Error("ETA before the first prompt should be unknown")
	}
}

// fakeScore builds a record as a session would, without a model.
func fakeScore(setupID string, calls *int) Scorer {
	return func(p Prompt) ScoreRecord {
		*calls++
		rec := ScoreRecord{ID: p.ID, Prompt: p.Text, SetupID: setupID, Ratio: float64(len(p.Text)), Tokens: []TokenRecord{}}
		if p.Text == "bad" {
			rec.Error = "refused"
		}
		return rec
	}
}

func corpus(n int) []Prompt {
	ps := make([]Prompt, n)
	for i := range ps {
		ps[i] = Prompt{ID: json.RawMessage(fmt.Sprint(i + 1)), Text: fmt.Sprintf("prompt %d", i+1)}
	}
	return ps
}

func TestRunBatchResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	ps := corpus(10)
	ps[4].Text = "bad"

	// A first run stopped after 4 prompts.
	out, err := OpenOutput(path, "aaaaaaaaaaaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	st, err := RunBatch(ctx, fakeScore("aaaaaaaaaaaaaaaa", &calls), ps, Shard{}, out, func(p BatchProgress) {
		if p.Done == 4 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || st.Scored != 4 || calls != 4 {
		t.Fatalf("first run: %+v, %v", st, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}

	// A second run scores only the other 6.
	out, err = OpenOutput(path, "aaaaaaaaaaaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	calls = 0
	var last BatchProgress
	st, err = RunBatch(context.Background(), fakeScore("aaaaaaaaaaaaaaaa", &calls), ps, Shard{}, out, func(p BatchProgress) { last = p })
	if err != nil || st.Skipped != 4 || st.Scored != 6 || st.Failed != 1 || calls != 6 || last.Done != 6 || last.Total != 6 {
		t.Fatalf("second run: %+v, %v, last progress %+v", st, err, last)
	}
	out.Close()
	lines := readLines(t, path)
	if len(lines) != 10 {
		t.Fatalf("%d lines, want 10", len(lines))
	}
	for i, l := range lines {
		want, _ := MarshalRecord(fakeScore("aaaaaaaaaaaaaaaa", new(int))(ps[i]))
		if l+"\n" != string(want) {
			t.Errorf("line %d = %s, want %s", i+1, l, want)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestOutputPartialLineAndRefusals(t *testing.T) {
	dir := t.TempDir()
	good, _ := MarshalRecord(ScoreRecord{ID: json.RawMessage("1"), Prompt: "p", SetupID: "aaaaaaaaaaaaaaaa", Tokens: []TokenRecord{}})
	tests := []struct {
		name, content string
		wantErr       string
		wantTrunc     int64
		wantLen       int
	}{
		{"empty", "", "", 0, 0},
		{"partial trailing line", string(good) + `{"id":2,"prompt":"q","setup_`, "", 28, 1},
		{"record without newline is partial", string(good[:len(good)-1]), "", int64(len(good) - 1), 0},
		{"other setup", strings.Replace(string(good), "aaaa", "bbbb", 1), "another setup", 0, 0},
		{"not a record", "hello\n", "line 1 is not a score record", 0, 0},
		{"record without id", `{"prompt":"p","setup_id":"aaaaaaaaaaaaaaaa"}` + "\n", "not a score record with an id", 0, 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprint(i))
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := OpenOutput(path, "aaaaaaaaaaaaaaaa")
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a usage error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.Truncated != tc.wantTrunc || out.Len() != tc.wantLen {
				t.Errorf("truncated %d, len %d; want %d, %d", out.Truncated, out.Len(), tc.wantTrunc, tc.wantLen)
			}
			// Appending after a truncation gives whole lines only.
			if err := out.Write(ScoreRecord{ID: json.RawMessage("9"), Prompt: "z", SetupID: "aaaaaaaaaaaaaaaa"}); err != nil {
				t.Fatal(err)
			}
			out.Close()
			for _, l := range readLines(t, path) {
				if !json.Valid([]byte(l)) {
					t.Errorf("line %q is not JSON", l)
				}
			}
		})
	}
}

func TestOutputRefusesChangedPromptAndSecondWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	out, err := OpenOutput(path, "aaaaaaaaaaaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenOutput(path, "aaaaaaaaaaaaaaaa"); !errors.Is(err, ErrOutputInUse) {
		t.Errorf("second writer: %v, want ErrOutputInUse", err)
	}
	if err := out.Write(ScoreRecord{ID: json.RawMessage("1"), Prompt: "p", SetupID: "aaaaaaaaaaaaaaaa"}); err != nil {
		t.Fatal(err)
	}
	if done, err := out.Done(Prompt{ID: json.RawMessage("1"), Text: "p"}); !done || err != nil {
		t.Errorf("same prompt: %v %v", done, err)
	}
	if _, err := out.Done(Prompt{ID: json.RawMessage("1"), Text: "changed"}); err == nil || !strings.Contains(err.Error(), "input changed") {
		t.Errorf("changed prompt: %v", err)
	}
	out.Close()
}

func TestCorpusSummary(t *testing.T) {
	recs := []ScoreRecord{
		{ID: json.RawMessage("1"), Prompt: "a", Layer: 3, OOD: 0.1},
		{ID: json.RawMessage("2"), Prompt: "b", Layer: 3, OOD: 0.4},
		{ID: json.RawMessage("3"), Prompt: "c", Layer: 3, OOD: 0.2},
		{ID: json.RawMessage("4"), Prompt: "d", Layer: 3, OOD: 0.3},
		{ID: json.RawMessage("5"), Prompt: "e", Layer: 3, Error: "too long"},
		{ID: json.RawMessage("6"), Prompt: "f", Layer: 5, OOD: 0.9},
	}
	whole := NewCorpusSummary(2)
	for _, r := range recs {
		whole.Add(r)
	}
	// Two partial summaries merged in the other order give the same report.
	a, b := NewCorpusSummary(2), NewCorpusSummary(2)
	for i, r := range recs {
		if i%2 == 0 {
			a.Add(r)
		} else {
			b.Add(r)
		}
	}
	b.Merge(a)
	got, want := b.Report(), whole.Report()
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Errorf("merged %s\nwhole  %s", gb, wb)
	}
	if want.Records != 6 || want.Errors != 1 || len(want.Layers) != 2 || len(want.Top) != 2 ||
		string(want.Top[0].ID) != "6" || string(want.Top[1].ID) != "2" {
		t.Fatalf("report %s", wb)
	}
	l := want.Layers[0] // 0.1 0.2 0.3 0.4
	if l.Layer != 3 || l.Count != 4 || l.Min != 0.1 || l.Max != 0.4 || math.Abs(l.P50-0.25) > 1e-12 ||
		math.Abs(l.P25-0.175) > 1e-12 || math.Abs(l.Mean-0.25) > 1e-12 {
		t.Errorf("layer 3 quantiles %+v", l)
	}
}
