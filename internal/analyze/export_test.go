package analyze

// Hooks for the package's external tests.

// SetBudget sets the batch memory budget in bytes, below what BatchMiB can
// express, so that tests on tiny models reach the bound.
func SetBudget(a *Analyzer, bytes int) { a.budget = bytes }

// RowsPerBatch exposes the batch-size estimate.
func RowsPerBatch(a *Analyzer, T int) int { return a.rowsPerBatch(T) }

// SatMul exposes the saturating product used by the prompt-length check.
var SatMul = satMul
