package gpushape

import "testing"

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"NVIDIA-H100-80GB-HBM3", "H100"},
		{"NVIDIA H100 80GB HBM3", "H100"},
		{"NVIDIA A100-SXM4-40GB", "A100"},
		{"NVIDIA-A100-SXM4-80GB", "A100"},
		{"Tesla-T4", "T4"},
		{"Tesla T4", "T4"},
		{"t4", "T4"},
		{"NVIDIA H200", "H200"},
		{"NVIDIA B200", "B200"},
		{"NVIDIA L40S", "L40S"},
		{"Tesla-V100-SXM2-16GB", "V100"},
		{"NVIDIA GeForce RTX 4090", "RTX4090"},
		{"NVIDIA", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestNormalizedShapesMatch: a requested shape names a node's product
// when both normalise to the same shape, whatever the case, vendor prefix
// or memory suffix (the planner compares them so).
func TestNormalizedShapesMatch(t *testing.T) {
	tests := []struct {
		requested, product string
		want               bool
	}{
		{"H100", "NVIDIA-H100-80GB-HBM3", true},
		{"h100", "NVIDIA-H100-80GB-HBM3", true},
		{"Tesla-T4", "T4", true},
		{"T4", "Tesla-T4", true},
		{"A100", "NVIDIA-H100-80GB-HBM3", false},
		{"H100", "NVIDIA H200", false},
		{"H100", "", false},
	}
	for _, tt := range tests {
		if got := Normalize(tt.requested) == Normalize(tt.product); got != tt.want {
			t.Errorf("Normalize(%q) == Normalize(%q) is %v, want %v", tt.requested, tt.product, got, tt.want)
		}
	}
}
