package v1alpha1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// TestTopologyCRDValidation: the kube-apiserver refuses a topology whose
// hostname level is not last or whose levels repeat, and a GPR topology
// naming both or neither of required and preferred.
func TestTopologyCRDValidation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo := func(name string, labels ...string) *v1alpha1.Topology {
		tp := &v1alpha1.Topology{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for _, l := range labels {
			tp.Spec.Levels = append(tp.Spec.Levels, v1alpha1.TopologyLevel{NodeLabel: l})
		}
		return tp
	}
	gpr := func(name string, tp *v1alpha1.GPRTopology) *v1alpha1.GPUProvisionRequest {
		g := validGPR(name)
		g.Spec.Topology = tp
		return g
	}
	tests := []struct {
		name    string
		obj     client.Object
		wantErr string
	}{
		{"three levels", topo("ok", "example.com/block", "example.com/rack", v1alpha1.LabelHostname), ""},
		{"hostname not last", topo("host-first", v1alpha1.LabelHostname, "example.com/block"), "kubernetes.io/hostname may only be the last level"},
		{"repeated level", topo("twice", "example.com/block", "example.com/block"), "levels must be distinct"},
		{"no level", topo("empty"), "spec.levels"},
		{"GPR required", gpr("gpr-topo-ok", &v1alpha1.GPRTopology{Required: "example.com/block", SliceSize: 2}), ""},
		{"GPR both", gpr("gpr-topo-both", &v1alpha1.GPRTopology{Required: "a", Preferred: "b"}), "exactly one of required and preferred"},
		{"GPR neither", gpr("gpr-topo-none", &v1alpha1.GPRTopology{SliceSize: 2}), "exactly one of required and preferred"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := env.Client.Create(ctx, tt.obj)
			if err == nil {
				t.Cleanup(func() { _ = env.Client.Delete(context.Background(), tt.obj) })
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("create: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("create: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
