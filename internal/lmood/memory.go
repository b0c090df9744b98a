package lmood

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/store"
)

// ErrNoMemory marks a session refused because its estimated peak memory
// exceeds what the machine has available (test with errors.Is).
var ErrNoMemory = errors.New("not enough memory")

// MemoryError says that a session would not fit in memory: its estimate,
// what is available, and what to try.
type MemoryError struct {
	Model     string
	Precision string // the store's precision (f32, i8, q, q8)
	Need      analyze.Memory
	Available int64
}

// Error states the estimate, the memory available and what to try.
func (e *MemoryError) Error() string {
	try := "lower --batch-memory (MiB) or --max-tokens, measure at an earlier --layer"
	switch e.Precision {
	case "f32", "":
		try = "re-import the model quantized (`lmood import FILE.gguf --precision q --force`, about half the memory), " + try
	case "i8":
		try = "re-import the model block-quantized (`lmood import FILE.gguf --precision q --force`, smaller for 4-bit GGUFs), " + try
	}
	return fmt.Sprintf("model %s (precision %s) needs about %s to analyze, but only %s is available (MemAvailable in /proc/meminfo); refused before loading it rather than risk the out-of-memory killer: %s, or free memory",
		e.Model, e.Precision, e.Need, analyze.Bytes(e.Available), try)
}

// Is makes errors.Is(err, ErrNoMemory) hold.
func (e *MemoryError) Is(target error) bool { return target == ErrNoMemory }

// MemAvailable returns the memory available for new work in bytes
// (MemAvailable of /proc/meminfo), and false where that is unknown (then
// nothing is refused). Tests replace it.
var MemAvailable = procMemAvailable

func procMemAvailable() (int64, bool) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	return parseMemAvailable(data)
}

// parseMemAvailable reads "MemAvailable: N kB" from /proc/meminfo text.
func parseMemAvailable(data []byte) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "MemAvailable:" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil || kb < 0 {
				return 0, false
			}
			unit := int64(1024)
			if len(f) >= 3 && string(f[2]) != "kB" {
				unit = 1
			}
			return kb * unit, true
		}
	}
	return 0, false
}

// checkMemory refuses an analyzer of m with options opt whose estimated
// peak memory exceeds MemAvailable, with a *MemoryError.
func checkMemory(m *store.Model, opt analyze.Options, hooks Hooks) error {
	need, err := analyze.EstimateMemory(m, opt)
	if err != nil {
		return err
	}
	avail, ok := MemAvailable()
	if !ok {
		hooks.logf("model %s: estimated peak memory %s", m.Manifest.Name, need)
		return nil
	}
	hooks.logf("model %s: estimated peak memory %s; %s available", m.Manifest.Name, need, analyze.Bytes(avail))
	if need.Total() <= avail {
		return nil
	}
	return &MemoryError{Model: m.Manifest.Name, Precision: m.Manifest.Precision, Need: need, Available: avail}
}
