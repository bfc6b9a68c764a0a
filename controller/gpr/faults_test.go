package gpr_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// refuseLabel marks the objects a test's fault policy (harness.refuse)
// has the kube-apiserver refuse to write.
const refuseLabel = "test.gpuspace.io/refuse"

// refuse installs a ValidatingAdmissionPolicy that refuses op on
// resource of gv where the CEL
// expression deny is true, waits until refused() reports it in force, and
// returns a function that lifts it (also run when the test ends).
func (h *harness) refuse(gv schema.GroupVersion, resource string, op admissionregistrationv1.OperationType, deny string, refused func(context.Context) bool) (lift func()) {
	h.t.Helper()
	name := h.name("refuse-" + strings.NewReplacer("/", "-", ".", "-").Replace(resource))
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{op},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{gv.Group}, APIVersions: []string{gv.Version}, Resources: []string{resource}},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{Expression: "!(" + deny + ")", Message: "refused by the test's fault policy"}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	adm := env.Kube.AdmissionregistrationV1()
	if _, err := adm.ValidatingAdmissionPolicies().Create(h.ctx, policy, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	if _, err := adm.ValidatingAdmissionPolicyBindings().Create(h.ctx, binding, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	lift = func() {
		ctx := context.Background()
		_ = adm.ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = adm.ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
	}
	h.t.Cleanup(lift)
	// The apiserver loads policies asynchronously.
	if err := wait.PollUntilContextTimeout(h.ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		return refused(ctx), nil
	}); err != nil {
		h.t.Fatalf("the fault policy on %s never took effect: %v", resource, err)
	}
	return lift
}

// denied reports whether err is the apiserver refusing a request by policy.
func denied(err error) bool { return apierrors.IsInvalid(err) || apierrors.IsForbidden(err) }

// poisonGPR creates a GPR for a workspace that does not exist, as kubectl
// can, and has the apiserver refuse every write of its status: admission
// refuses it on every pass and can never record that.
func (h *harness) poisonGPR() string {
	h.t.Helper()
	poison := h.gprObject("poison", h.name("no-such-workspace"), priority(300))
	poison.Labels[refuseLabel] = "true"
	if err := env.Client.Create(h.ctx, poison); err != nil {
		h.t.Fatal(err)
	}
	h.refuse(v1alpha1.SchemeGroupVersion, "gpuprovisionrequests/status", admissionregistrationv1.Update,
		"has(object.metadata.labels) && '"+refuseLabel+"' in object.metadata.labels",
		func(ctx context.Context) bool {
			g := h.getGPR(poison.Name)
			g.Status.FailureReason = "probe"
			return denied(env.Client.Status().Update(ctx, g, client.DryRunAll))
		})
	return poison.Name
}

// TestUnwritableGPRDoesNotStopTheQueue: a kubectl-created GPR for a
// workspace that does not exist, whose status the apiserver refuses to
// write, is that GPR's problem: it is never planned or started, an Event
// says why it could not be marked, and a valid GPR created after it still
// starts on the idle pool. (Before, admission returned the write error,
// the pass ended before planning, and the backoff that followed kept every
// start waiting.)
func TestUnwritableGPRDoesNotStopTheQueue(t *testing.T) {
	h := newHarness(t)
	node := h.t4Node("n1")
	poison := h.poisonGPR()
	h.start()

	ok := h.gpr("ok", h.workspace("w"), priority(1))
	g := h.status(ok, v1alpha1.GPRProvisioned)
	if len(g.Status.Nodes) != 1 || g.Status.Nodes[0] != node {
		t.Errorf("valid GPR on %v, want [%s]", g.Status.Nodes, node)
	}
	if p := h.getGPR(poison); p.Status.ProvisioningStatus != "" || len(p.Status.Nodes) != 0 {
		t.Errorf("unwritable GPR is %q on %v, want never admitted nor started", p.Status.ProvisioningStatus, p.Status.Nodes)
	}
	h.waitEvent(poison, "RefusalNotRecorded", "does not exist")
}

// TestStrayEvictionIsRetried: a GPU pod of no workspace on a free node,
// then the node bound to a workspace while the apiserver refuses the pod's
// Delete: once deletes are allowed again, the pod is deleted — the
// eviction is retried on later passes, not tried once on the pass that
// changed the node's labels.
func TestStrayEvictionIsRetried(t *testing.T) {
	h := newHarness(t)
	h.start()
	node := h.t4Node("n1")
	ns := h.name("nobody")
	if _, err := env.Kube.CoreV1().Namespaces().Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	stray := gpuPod(t, h, ns, "stray", node, map[string]string{refuseLabel: "true"})
	lift := h.refuse(corev1.SchemeGroupVersion, "pods", admissionregistrationv1.Delete,
		"has(oldObject.metadata.labels) && '"+refuseLabel+"' in oldObject.metadata.labels",
		func(ctx context.Context) bool {
			return denied(env.Kube.CoreV1().Pods(ns).Delete(ctx, stray, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}))
		})

	id := h.gpr("g", h.workspace("w"), exit("1d0h0m"))
	h.status(id, v1alpha1.GPRProvisioned)
	h.nodeBound(node, id)
	h.waitEvent(id, "EvictionFailed", node)
	if p, err := env.Kube.CoreV1().Pods(ns).Get(h.ctx, stray, metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("stray pod deleted while deletes were refused (err %v): the fault did not hold", err)
	}
	lift()
	h.podLeaves(ns, stray, fmt.Sprintf("GPU pod of no workspace on node %s bound to %s after deletes were allowed again", node, id))
	h.waitEvent(stray, "StrayGPUPodEvicted", id)
}

// TestUnwritableStartDoesNotStopTheOthers: four GPRs of four workspaces
// start in the same passes over four idle nodes, their starts written
// concurrently, while the apiserver refuses the start of one of them:
// that one says so (a WriteFailed Event), holds no node and binds none,
// and the other three start, each on a node of its own, bound to its
// workspace. Once starts are allowed again it starts on the node left.
func TestUnwritableStartDoesNotStopTheOthers(t *testing.T) {
	h := newHarness(t)
	nodes := []string{h.t4Node("n1"), h.t4Node("n2"), h.t4Node("n3"), h.t4Node("n4")}
	refused := h.gprObject("refused", h.workspace("w0"))
	refused.Labels[refuseLabel] = "true"
	if err := env.Client.Create(h.ctx, refused); err != nil {
		t.Fatal(err)
	}
	lift := h.refuse(v1alpha1.SchemeGroupVersion, "gpuprovisionrequests/status", admissionregistrationv1.Update,
		"has(object.metadata.labels) && '"+refuseLabel+"' in object.metadata.labels && has(object.status) && "+
			"has(object.status.provisioningStatus) && object.status.provisioningStatus == 'Provisioned'",
		func(ctx context.Context) bool {
			g := h.getGPR(refused.Name)
			g.Status.ProvisioningStatus = v1alpha1.GPRProvisioned
			return denied(env.Client.Status().Update(ctx, g, client.DryRunAll))
		})
	var ids []string
	for i := 1; i <= 3; i++ {
		ids = append(ids, h.gpr(fmt.Sprintf("g%d", i), h.workspace(fmt.Sprintf("w%d", i))))
	}
	h.start()

	held := map[string]string{}
	for _, id := range ids {
		g := h.status(id, v1alpha1.GPRProvisioned)
		if len(g.Status.Nodes) != 1 || held[g.Status.Nodes[0]] != "" {
			t.Fatalf("GPR %s on %v, want a node of its own (held: %v)", id, g.Status.Nodes, held)
		}
		held[g.Status.Nodes[0]] = id
		h.nodeBound(g.Status.Nodes[0], id)
	}
	h.waitEvent(refused.Name, "WriteFailed", "start decision")
	if g := h.getGPR(refused.Name); g.Status.ProvisioningStatus == v1alpha1.GPRProvisioned || len(g.Status.Nodes) != 0 {
		t.Errorf("refused GPR is %q on %v, want not started", g.Status.ProvisioningStatus, g.Status.Nodes)
	}
	for _, n := range nodes {
		if h.getNode(n).Labels[v1alpha1.LabelGPR] == refused.Name {
			t.Errorf("node %s bound to %s, whose start was refused", n, refused.Name)
		}
	}

	lift()
	g := h.status(refused.Name, v1alpha1.GPRProvisioned)
	if len(g.Status.Nodes) != 1 || held[g.Status.Nodes[0]] != "" {
		t.Fatalf("GPR %s on %v once allowed, want the node left (held: %v)", refused.Name, g.Status.Nodes, held)
	}
	h.nodeBound(g.Status.Nodes[0], refused.Name)
}
