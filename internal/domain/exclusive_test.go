package domain

import (
	"testing"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func TestClaims(t *testing.T) {
	g := &v1alpha1.GPUProvisionRequest{Status: v1alpha1.GPUProvisionRequestStatus{Nodes: []string{"n1", "n2"}}}
	for phase, want := range map[v1alpha1.ProvisioningStatus]int{
		"": 0, v1alpha1.GPRQueued: 0, v1alpha1.GPRProvisioned: 2, v1alpha1.GPRComplete: 0, v1alpha1.GPRError: 0,
	} {
		g.Status.ProvisioningStatus = phase
		if got := len(Claims(g)); got != want {
			t.Errorf("Claims of a %q GPR: %d nodes, want %d", phase, got, want)
		}
	}
}

func TestNodeBindingAdmits(t *testing.T) {
	held := func(ws, label string) NodeBinding { return NodeBinding{Claimants: 1, Holder: ws, Label: label} }
	tests := []struct {
		name string
		b    NodeBinding
		ws   string
		gpu  bool
		want Refusal
	}{
		{"free node, GPU pod of no workspace", NodeBinding{}, "", true, ""},
		{"free node, CPU pod of a workspace", NodeBinding{}, "a", false, ""},
		{"free node, GPU pod of a workspace", NodeBinding{}, "a", true, RefusedNotHeld},
		{"held and labelled, own GPU pod", held("a", "a"), "a", true, ""},
		{"held and labelled, own CPU pod", held("a", "a"), "a", false, ""},
		{"held and labelled, another workspace", held("a", "a"), "b", false, RefusedBoundElsewhere},
		{"held, not labelled yet: own GPU pod", held("a", ""), "a", true, ""},
		{"held, not labelled yet: another workspace", held("a", ""), "b", true, RefusedBoundElsewhere},
		{"held, not labelled yet: no workspace", held("a", ""), "", false, RefusedBoundElsewhere},
		{"held, still labelled for the last holder: the last holder", held("a", "b"), "b", true, RefusedBoundElsewhere},
		{"held, still labelled for the last holder: the holder", held("a", "b"), "a", true, ""},
		{"released, label lingers: its GPU pod", NodeBinding{Label: "a"}, "a", true, RefusedNotHeld},
		{"released, label lingers: its CPU pod", NodeBinding{Label: "a"}, "a", false, ""},
		{"released, label lingers: another workspace's GPU pod", NodeBinding{Label: "a"}, "b", true, RefusedBoundElsewhere},
		{"released, label lingers: no workspace", NodeBinding{Label: "a"}, "", false, RefusedBoundElsewhere},
		{"two claimants: no one", NodeBinding{Claimants: 2, Label: "a"}, "a", false, RefusedBoundElsewhere},
		{"two claimants: not even pods of no workspace", NodeBinding{Claimants: 2}, "", false, RefusedBoundElsewhere},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Admits(tt.ws, tt.gpu); got != tt.want {
				t.Errorf("Admits(%q, gpu=%v) = %q, want %q", tt.ws, tt.gpu, got, tt.want)
			}
		})
	}
}

func TestToleratesWorkspaceTaint(t *testing.T) {
	b := NodeBinding{Claimants: 1, Holder: "a", Label: "b"}
	for _, tt := range []struct {
		ws, value string
		want      bool
	}{{"a", "a", true}, {"a", "b", true}, {"b", "b", true}, {"c", "b", false}, {"", "", false}} {
		if got := b.ToleratesWorkspaceTaint(tt.ws, tt.value); got != tt.want {
			t.Errorf("ToleratesWorkspaceTaint(%q, %q) = %v, want %v", tt.ws, tt.value, got, tt.want)
		}
	}
	if (NodeBinding{Claimants: 2}).ToleratesWorkspaceTaint("a", "b") {
		t.Error("a conflicted node's taint is tolerated by a non-matching workspace")
	}
}
