package admission

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

func testWorkspace(name string, created time.Time, namespaces ...string) v1alpha1.Workspace {
	ws := v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec: v1alpha1.WorkspaceSpec{Clusters: []string{"c"}}}
	for _, ns := range namespaces {
		ws.Spec.Namespaces = append(ws.Spec.Namespaces, v1alpha1.WorkspaceNamespace{Namespace: ns})
	}
	return ws
}

func TestValidateWorkspace(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ws := testWorkspace("list", t0, "a", "a", "kube-x", "gpuspace-system", "Bad_NS")
	ws.Spec.Clusters = []string{"c", "c", "d"}
	ws.Spec.MaxClusters = 1
	errs := ValidateWorkspace(&ws, WorkspaceRules{SystemNamespace: "gpuspace-system", KnownClusters: []string{"c"}})
	got := errs.ToAggregate().Error()
	for _, want := range []string{"metadata.name", "spec.namespaces[1].namespace: Duplicate", "kube-x", "gpuspace-system",
		"spec.namespaces[4].namespace: Invalid", "spec.clusters[1]: Duplicate", "spec.clusters[2]: Unsupported", "spec.maxClusters"} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %q lack %q", got, want)
		}
	}
	ok := testWorkspace("fine", t0, "a")
	if errs := ValidateWorkspace(&ok, WorkspaceRules{}); len(errs) > 0 {
		t.Errorf("valid workspace refused: %v", errs)
	}
}

func TestNamespaceTaken(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := testWorkspace("a", t0, "shared")
	b := testWorkspace("b", t0.Add(time.Second), "own", "shared")
	all := []v1alpha1.Workspace{a, b}
	if ns, owner, taken := NamespaceTaken(&b, all); !taken || ns != "shared" || owner != "a" {
		t.Errorf("NamespaceTaken(b) = %q, %q, %v; want shared, a, true", ns, owner, taken)
	}
	if !Precedes(&a, &b) || Precedes(&b, &a) {
		t.Error("a does not precede b")
	}
	var beforeA []v1alpha1.Workspace
	for i := range all {
		if Precedes(&all[i], &a) {
			beforeA = append(beforeA, all[i])
		}
	}
	if _, _, taken := NamespaceTaken(&a, beforeA); taken {
		t.Error("the older workspace is refused for its own namespace")
	}
}
