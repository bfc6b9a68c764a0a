package integration

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
)

// applyAdmissionPolicy creates the objects of manifests/admission.
func applyAdmissionPolicy(ctx context.Context, t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(repoFile("manifests/admission/workspace-node-binding.yaml"))
	must(t, err)
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		must(t, err)
		switch o := obj.(type) {
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			_, err = env.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, o, metav1.CreateOptions{})
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			_, err = env.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("unexpected %T in the admission manifest", obj)
		}
		must(t, err)
	}
}

// TestAdmissionPolicyRejectsNodeNameBypass: a pod presetting spec.nodeName
// onto a node bound to another workspace is rejected by the apiserver,
// as is a direct binding of such a pod; the workspace's own pods,
// exempt namespaces and unbound nodes are not affected.
func TestAdmissionPolicyRejectsNodeNameBypass(t *testing.T) {
	ctx := ctxFor(t)
	addNode(ctx, t, "adm-a1", 8)
	addNode(ctx, t, "adm-free", 8)
	createNamespace(ctx, t, "adm-alpha", "adm-alpha")
	createNamespace(ctx, t, "adm-beta", "adm-beta")
	createNamespace(ctx, t, "adm-plain", "")
	createNamespace(ctx, t, "kube-system", "")
	bindNode(ctx, t, "adm-a1", "adm-alpha", "gpr-adm-alpha")
	applyAdmissionPolicy(ctx, t)
	t.Cleanup(func() {
		ctx := context.Background()
		_ = env.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, "gpuspace-workspace-node-binding", metav1.DeleteOptions{})
		_ = env.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, "gpuspace-workspace-node-binding", metav1.DeleteOptions{})
	})

	create := func(ns, node string) error {
		p := cpuPod(ns, "bypass")
		p.Spec.NodeName = node
		_, err := env.Kube.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	// The apiserver loads policies and their params asynchronously: wait
	// until the policy is in force.
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		err := create("adm-plain", "adm-a1")
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "is bound to workspace"), nil
	}); err != nil {
		t.Fatalf("policy never rejected a stranger's pod on a bound node: %v", err)
	}

	tests := []struct {
		name, ns, node string
		// wantDenied is a substring of the rejection, "" for admitted.
		wantDenied string
	}{
		{"no workspace onto a bound node", "adm-plain", "adm-a1", "node adm-a1 is bound to workspace adm-alpha; namespace adm-plain belongs to no workspace"},
		{"another workspace onto a bound node", "adm-beta", "adm-a1", "node adm-a1 is bound to workspace adm-alpha; namespace adm-beta belongs to workspace adm-beta"},
		{"the workspace onto its own node", "adm-alpha", "adm-a1", ""},
		{"anyone onto an unbound node", "adm-plain", "adm-free", ""},
		{"an exempt namespace onto a bound node", "kube-system", "adm-a1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := create(tt.ns, tt.node)
			switch {
			case tt.wantDenied == "" && err != nil:
				t.Errorf("rejected: %v", err)
			case tt.wantDenied != "" && err == nil:
				t.Errorf("admitted, want rejected with %q", tt.wantDenied)
			case tt.wantDenied != "" && !strings.Contains(err.Error(), tt.wantDenied):
				t.Errorf("rejected with %v, want %q", err, tt.wantDenied)
			}
		})
	}

	// The policy refuses every pod of another workspace, whatever it asks
	// for: one that gets its GPU through a DRA claim too.
	t.Run("another workspace's DRA GPU pod onto a bound node", func(t *testing.T) {
		p := cpuPod("adm-beta", "dra-bypass")
		p.Spec.NodeName = "adm-a1"
		p.Spec.ResourceClaims = []v1.PodResourceClaim{{Name: "gpu", ResourceClaimTemplateName: ptr.To("one-gpu")}}
		p.Spec.Containers[0].Resources.Claims = []v1.ResourceClaim{{Name: "gpu"}}
		_, err := env.Kube.CoreV1().Pods("adm-beta").Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "node adm-a1 is bound to workspace adm-alpha") {
			t.Errorf("create: err = %v, want a rejection naming the workspace", err)
		}
	})

	t.Run("binding a stranger's pod to a bound node", func(t *testing.T) {
		createPod(ctx, t, cpuPod("adm-beta", "to-bind"))
		err := env.Kube.CoreV1().Pods("adm-beta").Bind(ctx, &v1.Binding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "adm-beta", Name: "to-bind"},
			Target:     v1.ObjectReference{Kind: "Node", Name: "adm-a1"},
		}, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "bound to workspace adm-alpha") {
			t.Errorf("bind: err = %v, want a rejection naming the workspace", err)
		}
	})

	// The label is what the policy reads: unbinding the node lifts it.
	t.Run("unbound again", func(t *testing.T) {
		bindNode(ctx, t, "adm-a1", "", "")
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			return create("adm-plain", "adm-a1") == nil, nil
		}); err != nil {
			t.Errorf("a stranger's pod is still rejected from the released node: %v", create("adm-plain", "adm-a1"))
		}
	})
}
