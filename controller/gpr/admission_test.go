package gpr_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// TestAdmissionOnEveryPath: GPRs created straight in the kube-apiserver
// (kubectl) for a workspace that does not exist, or for a cluster that is
// not the workspace's, are failed with the reason before any planning and
// never bind the free node; a valid GPR then gets that node.
func TestAdmissionOnEveryPath(t *testing.T) {
	h := newHarness(t)
	h.start()
	node := h.t4Node("n1")
	elsewhere := &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: h.name("elsewhere"), Labels: h.labels()},
		Spec: v1alpha1.WorkspaceSpec{Username: "u", Clusters: []string{h.cluster + "-other"},
			Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: h.name("elsewhere-ns")}}},
	}
	if err := env.Client.Create(h.ctx, elsewhere); err != nil {
		t.Fatal(err)
	}
	missing := h.gpr("missing", h.name("no-such-workspace"), priority(300))
	foreign := h.gpr("foreign", elsewhere.Name, priority(300))

	for id, want := range map[string]string{
		missing: `workspace "` + h.name("no-such-workspace") + `" does not exist`,
		foreign: `workspace "` + elsewhere.Name + `" is not on cluster "` + h.cluster + `"`,
	} {
		g := h.status(id, v1alpha1.GPRError)
		if !strings.Contains(g.Status.FailureReason, want) || g.Status.Reason != v1alpha1.ReasonInvalid || len(g.Status.Nodes) != 0 {
			t.Errorf("GPR %s: reason %s %q nodes %v, want Invalid saying %q and no nodes", id, g.Status.Reason, g.Status.FailureReason, g.Status.Nodes, want)
		}
	}
	ok := h.gpr("ok", h.workspace("w"), priority(1))
	g := h.status(ok, v1alpha1.GPRProvisioned)
	if len(g.Status.Nodes) != 1 || g.Status.Nodes[0] != node {
		t.Errorf("valid GPR on %v, want [%s]: the refused GPRs must not have held it", g.Status.Nodes, node)
	}
}
