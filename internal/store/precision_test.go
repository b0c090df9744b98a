package store

import "testing"

func TestResolvePrecision(t *testing.T) {
	tests := []struct {
		name   string
		p      string
		params int64
		want   string
	}{
		{"auto, small model expanded", PrecisionAuto, 135_000_000, PrecisionF32},
		{"auto, exactly at the limit", PrecisionAuto, AutoF32Bytes / 4, PrecisionF32},
		{"auto, just over the limit", PrecisionAuto, AutoF32Bytes/4 + 1, PrecisionQuant},
		{"auto, 8B model kept quantized", PrecisionAuto, 8_000_000_000, PrecisionQuant},
		{"explicit q kept", PrecisionQuant, 135_000_000, PrecisionQuant},
		{"explicit f32 kept", PrecisionF32, 8_000_000_000, PrecisionF32},
		{"explicit q8 kept", PrecisionQuant8, 1, PrecisionQuant8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
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
