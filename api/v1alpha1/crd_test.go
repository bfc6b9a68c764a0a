package v1alpha1_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func validGPR(name string) *v1alpha1.GPUProvisionRequest {
	return &v1alpha1.GPUProvisionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.GPUProvisionRequestSpec{
			GPRName:      "gpr1",
			Workspace:    "team-a",
			ClusterName:  "worker-1",
			NumberOfGPUs: 1,
			InstanceType: "n1-standard-8",
			GPUShape:     "Tesla-T4",
			MemoryPerGPU: 15,
			ExitDuration: "0d0h5m",
		},
	}
}

func TestWorkspaceAndGPRRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ws := &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a"},
		Spec: v1alpha1.WorkspaceSpec{
			Username:   "John Doe",
			Email:      "john.doe@example.com",
			Clusters:   []string{"worker-1"},
			Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: "team-a-dev"}},
		},
	}
	if err := env.Client.Create(ctx, ws); err != nil {
		t.Fatalf("create workspace: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ws) })

	var gotWS v1alpha1.Workspace
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "team-a"}, &gotWS); err != nil {
		t.Fatalf("get workspace: %v", err)
	}
	// The schema's defaults are applied by the apiserver.
	if gotWS.Spec.OverlayNetworkDeploymentMode != v1alpha1.OverlayNoNetwork || gotWS.Spec.MaxClusters != 16 {
		t.Errorf("workspace defaults: mode=%q maxClusters=%d, want no-network and 16",
			gotWS.Spec.OverlayNetworkDeploymentMode, gotWS.Spec.MaxClusters)
	}

	gpr := validGPR("gpr-1bb22a0b-9388")
	if err := env.Client.Create(ctx, gpr); err != nil {
		t.Fatalf("create GPR: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), gpr) })
	var got v1alpha1.GPUProvisionRequest
	if err := env.Client.Get(ctx, client.ObjectKey{Name: gpr.Name}, &got); err != nil {
		t.Fatalf("get GPR: %v", err)
	}
	want := gpr.Spec
	want.Priority = v1alpha1.DefaultPriority
	want.NumberOfGPUNodes = 1
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("GPR spec after defaulting (-want +got):\n%s", diff)
	}

	// Status is a subresource: writing it through the main resource is
	// ignored, through /status it sticks.
	got.Status.ProvisioningStatus = v1alpha1.GPRQueued
	got.Status.EstimatedWaitTime = "0h2m40s"
	if err := env.Client.Status().Update(ctx, &got); err != nil {
		t.Fatalf("update status: %v", err)
	}
	var again v1alpha1.GPUProvisionRequest
	if err := env.Client.Get(ctx, client.ObjectKey{Name: gpr.Name}, &again); err != nil {
		t.Fatal(err)
	}
	if again.Status.ProvisioningStatus != v1alpha1.GPRQueued || again.Status.EstimatedWaitTime != "0h2m40s" {
		t.Errorf("status after update: %+v", again.Status)
	}

	// workspace and clusterName are immutable.
	again.Spec.Workspace = "team-b"
	err := env.Client.Update(ctx, &again)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "workspace is immutable") {
		t.Errorf("changing workspace: got %v, want Invalid 'workspace is immutable'", err)
	}
}

func TestGPRSchemaRejectsInvalid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name      string
		mutate    func(*v1alpha1.GPUProvisionRequest)
		wantField string
	}{
		{"priority above 300", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.Priority = 500 }, "spec.priority"},
		{"priority below 1", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.Priority = -1 }, "spec.priority"},
		{"exitDuration not NdNhNm", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.ExitDuration = "5 minutes" }, "spec.exitDuration"},
		{"exitDuration in Go form", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.ExitDuration = "0h5m0s" }, "spec.exitDuration"},
		{"exitDuration empty", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.ExitDuration = "" }, "spec.exitDuration"},
		{"zero GPUs", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.NumberOfGPUs = 0 }, "spec.numberOfGPUs"},
		{"negative nodes", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.NumberOfGPUNodes = -2 }, "spec.numberOfGPUNodes"},
		{"workspace not DNS-1123", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.Workspace = "Team_A" }, "spec.workspace"},
		{"gprName not DNS-1123", func(g *v1alpha1.GPUProvisionRequest) { g.Spec.GPRName = "my gpr" }, "spec.gprName"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := validGPR("gpr-invalid-" + string(rune('a'+i)))
			tt.mutate(g)
			err := env.Client.Create(ctx, g)
			if err == nil {
				_ = env.Client.Delete(ctx, g)
				t.Fatalf("created an invalid GPR")
			}
			var status apierrors.APIStatus
			if !asStatus(err, &status) || status.Status().Code != http.StatusUnprocessableEntity {
				t.Fatalf("got %v, want HTTP 422", err)
			}
			if !strings.Contains(err.Error(), tt.wantField) {
				t.Errorf("error %q does not name %s", err, tt.wantField)
			}
		})
	}
}

func TestWorkspaceSchemaRejectsInvalid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws := &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: "no-clusters"},
		Spec: v1alpha1.WorkspaceSpec{
			Username:   "x",
			Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: "Not_A_Namespace"}},
		},
	}
	err := env.Client.Create(ctx, ws)
	if !apierrors.IsInvalid(err) {
		t.Fatalf("got %v, want Invalid", err)
	}
	for _, field := range []string{"spec.clusters", "spec.namespaces[0].namespace"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}

func asStatus(err error, out *apierrors.APIStatus) bool {
	s, ok := err.(apierrors.APIStatus)
	if ok {
		*out = s
	}
	return ok
}
