package manifests_test

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// testChartOIDC: hub.oidc reaches gpuspace serve's --oidc-* flags (as
// GPUSPACE_OIDC_* variables) and its roles the ConfigMap; a bad role or a
// missing client id is refused.
func testChartOIDC(t *testing.T) {
	t.Helper()
	set := []string{"hub.oidc.issuerURL=https://idp.example.com/realms/ml", "hub.oidc.clientID=gpuspace",
		"hub.oidc.roles.groups.platform.role=Owner", "hub.oidc.roles.groups.ml-team-a.role=Editor", "hub.oidc.roles.groups.ml-team-a.workspace=team-a"}
	objs, _, err := renderChart(t, nil, []string{strings.Join(set, ",")})
	if err != nil {
		t.Fatal(err)
	}
	ids := byID(t, objs)
	containers, _, _ := unstructured.NestedSlice(ids["Deployment gpuspace-system/gpuspace"], "spec", "template", "spec", "containers")
	var env []any
	if len(containers) > 0 {
		env, _, _ = unstructured.NestedSlice(containers[0].(map[string]any), "env")
	}
	for name, want := range map[string]string{"GPUSPACE_OIDC_ISSUER_URL": "https://idp.example.com/realms/ml", "GPUSPACE_OIDC_CLIENT_ID": "gpuspace", "GPUSPACE_OIDC_GROUPS_CLAIM": "groups"} {
		if !slices.ContainsFunc(env, func(e any) bool { m := e.(map[string]any); return m["name"] == name && m["value"] == want }) {
			t.Errorf("gpuspace env %v, want %s=%s", env, name, want)
		}
	}
	roles, _, _ := unstructured.NestedString(ids["ConfigMap gpuspace-system/gpuspace-oidc-roles"], "data", "roles.yaml")
	if !strings.Contains(roles, "ml-team-a:") || !strings.Contains(roles, "workspace: team-a") || !strings.Contains(roles, "role: Owner") {
		t.Errorf("roles ConfigMap: %q", roles)
	}
	for _, tc := range []struct{ set, want string }{
		{"hub.oidc.issuerURL=https://idp.example.com", "hub.oidc.clientID is required"},
		{"hub.oidc.roles.groups.x.role=Admin", "role"},
	} {
		if _, _, err := renderChart(t, nil, []string{tc.set}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: %v, want an error saying %q", tc.set, err, tc.want)
		}
	}
}
