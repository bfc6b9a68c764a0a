package controller_test

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/gpuspace/gpuspace/controller/workspace"
)

// TestClusterRoleManifest keeps the shipped manifest equal to what the
// controller creates.
func TestClusterRoleManifest(t *testing.T) {
	b, err := os.ReadFile("../manifests/rbac/workspace-user-clusterrole.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(workspace.ClusterRole(), &got); diff != "" {
		t.Errorf("manifests/rbac/workspace-user-clusterrole.yaml differs from workspace.ClusterRole() (-code +file):\n%s", diff)
	}
}
