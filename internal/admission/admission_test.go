package admission

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func TestValidateGPR(t *testing.T) {
	ws := &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: v1alpha1.WorkspaceSpec{Clusters: []string{"prod", "east"}}}
	deleting := ws.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{}
	gpr := func(cluster, exit string) *v1alpha1.GPUProvisionRequest {
		return &v1alpha1.GPUProvisionRequest{Spec: v1alpha1.GPUProvisionRequestSpec{Workspace: "team", ClusterName: cluster, ExitDuration: exit}}
	}
	tests := []struct {
		name    string
		g       *v1alpha1.GPUProvisionRequest
		ws      *v1alpha1.Workspace
		want    []string // field: type
		message string
	}{
		{"valid", gpr("east", "0d1h0m"), ws, nil, ""},
		{"missing workspace", gpr("east", "0d1h0m"), nil, []string{"spec.workspace: Not found"}, `workspace "team" does not exist`},
		{"foreign cluster", gpr("west", "0d1h0m"), ws, []string{"spec.clusterName: Unsupported value"}, `workspace "team" is not on cluster "west"; its clusters: prod, east`},
		{"workspace being deleted", gpr("east", "0d1h0m"), deleting, []string{"spec.workspace: Invalid value"}, "being deleted"},
		{"bad durations", func() *v1alpha1.GPUProvisionRequest {
			g := gpr("prod", "2h")
			g.Spec.IdleTimeOutDuration = "0d0h0m"
			return g
		}(), ws, []string{"spec.exitDuration: Invalid value", "spec.idleTimeOutDuration: Invalid value"}, "must be longer than zero"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateGPR(tc.g, tc.ws)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field+": "+e.Type.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("errors %v, want %v", got, tc.want)
			}
			if msg := Message(tc.g, tc.ws, errs); len(errs) > 0 && !strings.Contains(msg, tc.message) {
				t.Errorf("message %q does not say %q", msg, tc.message)
			}
		})
	}
}

func TestDefaultGPR(t *testing.T) {
	ws := &v1alpha1.Workspace{Spec: v1alpha1.WorkspaceSpec{Clusters: []string{"prod", "east"}}}
	g := &v1alpha1.GPUProvisionRequest{Spec: v1alpha1.GPUProvisionRequestSpec{ExitDuration: "0d1h0m"}}
	DefaultGPR(g, ws)
	if g.Spec.ClusterName != "prod" || g.Spec.Priority != v1alpha1.DefaultPriority || g.Spec.NumberOfGPUNodes != 1 {
		t.Errorf("defaulted spec %+v", g.Spec)
	}
	if errs := ValidateGPR(g, ws); len(errs) != 0 {
		t.Errorf("defaulted GPR invalid: %v", errs)
	}
}
