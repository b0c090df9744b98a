package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// TestLoadRealModel sends a bounded number of small score requests to a
// real server on the default model over loopback, at concurrency 1, 4
// and 8, and reports throughput, p50/p99 latency and errors; every answer
// must equal the core's record (what `lmood score --json` writes) for the
// same prompt and seed, and the heap must stay flat.
func TestLoadRealModel(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: not in -short")
	}
	testutil.Runtime(t)
	st, name := store.Default(), store.DefaultModel
	m, err := st.Open(name)
	if err != nil {
		testutil.Missing(t, "the default model is not in the store (%v): run `lmood setup` (scripts/test.sh does)", err)
	}
	prompts := []string{"Eggplants are purple.", "Eggplants are fire-engine red.", "lsadfhl; wiffle jfdalkgy", "The cat sat on the mat.", "Привет, мир"}
	opt := core.DefaultOptions()
	opt.Samples, opt.MaxTokens = 2, 512
	sess, err := core.NewSession(m, opt, []int{m.Config().Middle()}, 0, core.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, p := range prompts {
		b, _ := json.Marshal(sess.Score(p, m.Config().Middle()))
		want[p] = b
	}
	sess.Close()
	m.Close()

	s := New(Config{Store: st, DefaultModel: name, Parallel: 1, Queue: 16, Version: "load"})
	ts := httptest.NewServer(s.Handler())
	defer func() { ts.Close(); s.Close() }()

	var before runtime.MemStats
	for _, conc := range []int{1, 4, 8} {
		const total = 100
		lat := make([]time.Duration, total)
		var mu sync.Mutex
		errs, mismatches := 0, 0
		next := make(chan int, total)
		for i := range total {
			next <- i
		}
		close(next)
		start := time.Now()
		var wg sync.WaitGroup
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					p := prompts[i%len(prompts)]
					body, _ := json.Marshal(map[string]any{"prompt": p, "options": map[string]any{"samples": 2}})
					t0 := time.Now()
					resp, err := http.Post(ts.URL+"/api/score", "application/json", bytes.NewReader(body))
					var got bytes.Buffer
					if err == nil {
						_, _ = got.ReadFrom(resp.Body)
						resp.Body.Close()
					}
					d := time.Since(t0)
					mu.Lock()
					lat[i] = d
					if err != nil || resp.StatusCode != 200 {
						errs++
					} else if !bytes.Equal(bytes.TrimSpace(got.Bytes()), want[p]) {
						mismatches++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if conc == 1 {
			before = ms
		}
		t.Logf("concurrency %d: %d requests in %v = %.1f req/s, p50 %v, p99 %v, %d errors, %d records differ from the CLI's; heap %.1f MiB",
			conc, total, el.Round(time.Millisecond), float64(total)/el.Seconds(), lat[total/2].Round(time.Millisecond), lat[total*99/100].Round(time.Millisecond),
			errs, mismatches, float64(ms.HeapAlloc)/(1<<20))
		if errs > 0 || mismatches > 0 {
			t.Errorf("concurrency %d: %d errors, %d mismatches", conc, errs, mismatches)
		}
		if ms.HeapAlloc > before.HeapAlloc+64<<20 {
			t.Errorf("heap grew from %d to %d bytes", before.HeapAlloc, ms.HeapAlloc)
		}
	}
}
