package store

// Internals the external tests (package store_test) reach.

// ExpandedScales is expandedScales, with whether name is a factored weight.
func (m *Model) ExpandedScales(name string) (scales, zero []float32, factored bool, err error) {
	if _, ok := m.expanded.entry(name); !ok {
		return nil, nil, false, nil
	}
	scales, zero, err = m.expandedScales(name)
	return scales, zero, true, err
}

// SetShmDir points scratchDir at dir until the returned func runs.
func SetShmDir(dir string) func() {
	old := shmDir
	shmDir = dir
	return func() { shmDir = old }
}

// SetBalance sets the conversion's test switches (see balanceOff) until
// the returned func runs.
func SetBalance(off, float32 bool) func() {
	oldOff, oldF32 := balanceOff, balanceFloat32
	balanceOff, balanceFloat32 = off, float32
	return func() { balanceOff, balanceFloat32 = oldOff, oldF32 }
}
