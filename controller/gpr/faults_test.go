package gpr_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// refuseStatusLabel marks GPRs whose status writes refuseStatusWrites has
// the kube-apiserver refuse.
const refuseStatusLabel = "test.gpuspace.io/refuse-status"

// refuseStatusWrites installs a ValidatingAdmissionPolicy that refuses
// every status write of GPRs labelled refuseStatusLabel, and waits until
// the apiserver enforces it on probe (a labelled GPR).
func (h *harness) refuseStatusWrites(probe string) {
	h.t.Helper()
	name := h.name("refuse-status")
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
						Rule: admissionregistrationv1.Rule{
							APIGroups: []string{v1alpha1.GroupName}, APIVersions: []string{"v1alpha1"},
							Resources: []string{"gpuprovisionrequests/status"},
						},
					},
				}},
			},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!has(object.metadata.labels) || !('" + refuseStatusLabel + "' in object.metadata.labels)",
				Message:    "status writes of this GPR are refused (test)",
			}},
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
	h.t.Cleanup(func() {
		ctx := context.Background()
		_ = adm.ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = adm.ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
	})
	// The apiserver loads policies asynchronously: wait until a dry-run
	// status write of the probe is refused.
	if err := wait.PollUntilContextTimeout(h.ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		g := h.getGPR(probe)
		g.Status.FailureReason = "probe"
		err := env.Client.Status().Update(ctx, g, client.DryRunAll)
		return apierrors.IsInvalid(err) || apierrors.IsForbidden(err), nil
	}); err != nil {
		h.t.Fatalf("the policy never refused a status write: %v", err)
	}
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
	poison := h.gprObject("poison", h.name("no-such-workspace"), priority(300))
	poison.Labels[refuseStatusLabel] = "true"
	if err := env.Client.Create(h.ctx, poison); err != nil {
		t.Fatal(err)
	}
	h.refuseStatusWrites(poison.Name)
	h.start()

	ok := h.gpr("ok", h.workspace("w"), priority(1))
	g := h.status(ok, v1alpha1.GPRProvisioned)
	if len(g.Status.Nodes) != 1 || g.Status.Nodes[0] != node {
		t.Errorf("valid GPR on %v, want [%s]", g.Status.Nodes, node)
	}
	if p := h.getGPR(poison.Name); p.Status.ProvisioningStatus != "" || len(p.Status.Nodes) != 0 {
		t.Errorf("unwritable GPR is %q on %v, want never admitted nor started", p.Status.ProvisioningStatus, p.Status.Nodes)
	}
	h.eventually(func() error {
		var evs eventsv1.EventList
		if err := env.Client.List(h.ctx, &evs); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == poison.Name && e.Reason == "RefusalNotRecorded" && strings.Contains(e.Note, "does not exist") {
				return nil
			}
		}
		return fmt.Errorf("no RefusalNotRecorded event on GPR %s", poison.Name)
	})
}
