package store

import "testing"

func TestResolvePrecision(t *testing.T) {
	saved := Int8Dot
	t.Cleanup(func() { Int8Dot = saved })
	tests := []struct {
		name   string
		p      string
		params int64
		dot    bool // the CPU has 8-bit dot products
		want   string
	}{
		{"auto, small model, int8 CPU", PrecisionAuto, 135_000_000, true, PrecisionInt8},
		{"auto, small model, no 8-bit dot products", PrecisionAuto, 135_000_000, false, PrecisionF32},
		{"auto, exactly at the limit", PrecisionAuto, AutoF32Bytes / 4, true, PrecisionInt8},
		{"auto, just over the limit", PrecisionAuto, AutoF32Bytes/4 + 1, true, PrecisionQuant},
		{"auto, 8B model kept quantized", PrecisionAuto, 8_000_000_000, false, PrecisionQuant},
		{"explicit q kept", PrecisionQuant, 135_000_000, true, PrecisionQuant},
		{"explicit f32 kept", PrecisionF32, 8_000_000_000, true, PrecisionF32},
		{"explicit q8 kept", PrecisionQuant8, 1, true, PrecisionQuant8},
		{"explicit i8 kept", PrecisionInt8, 8_000_000_000, false, PrecisionInt8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Int8Dot = tc.dot
			if got := ResolvePrecision(tc.p, tc.params); got != tc.want {
				t.Errorf("ResolvePrecision(%q, %d) = %q, want %q", tc.p, tc.params, got, tc.want)
			}
		})
	}
	if p, err := CheckPrecision(""); err != nil || p != PrecisionAuto {
		t.Errorf(`CheckPrecision("") = %q, %v; want the default %q`, p, err, PrecisionAuto)
	}
	if _, err := CheckPrecision("int4"); err == nil {
		t.Error("CheckPrecision accepted an unknown precision")
	}
}
