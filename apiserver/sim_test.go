package apiserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
)

// What the workspace and GPR controllers do, done by hand: these tests are
// about the API, and doing the controllers' part directly makes each state
// (a ready workspace, a provisioned GPR) a deterministic step.

const (
	workspaceSA   = "gpuspace-workspace"
	workspaceRole = "gpuspace-test-workspace-user"
)

// readyWorkspace does the workspace controller's part for ws: namespaces,
// the ServiceAccount and an edit RoleBinding in each, status.
func readyWorkspace(t *testing.T, name string) {
	t.Helper()
	if err := setWorkspaceReady(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

// readyWorkspaceAfter is readyWorkspace done in the background after
// delay, as the controller would while the client goes on: a request sent
// meanwhile finds the workspace not ready yet.
func readyWorkspaceAfter(t *testing.T, name string, delay time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		time.Sleep(delay)
		done <- setWorkspaceReady(context.Background(), name)
	}()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("ready workspace %s: %v", name, err)
		}
	})
}

func setWorkspaceReady(ctx context.Context, name string) error {
	var ws v1alpha1.Workspace
	if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, &ws); err != nil {
		return fmt.Errorf("get workspace: %w", err)
	}
	// The built-in "edit" role is aggregated by kube-controller-manager,
	// which the test control plane does not run: bind a role of our own.
	objs := []client.Object{&rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: workspaceRole},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "configmaps", "services"}, Verbs: []string{"*"}}},
	}}
	for _, n := range ws.Spec.Namespaces {
		objs = append(objs,
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n.Namespace, Labels: map[string]string{v1alpha1.LabelWorkspace: name}}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: workspaceSA, Namespace: n.Namespace}},
			&rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "gpuspace-workspace-user", Namespace: n.Namespace},
				RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: workspaceRole},
				Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: workspaceSA, Namespace: n.Namespace}},
			})
	}
	for _, obj := range objs {
		if err := env.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, &ws); err != nil {
			return err
		}
		ws.Status.ServiceAccount = workspaceSA
		meta.SetStatusCondition(&ws.Status.Conditions, metav1.Condition{Type: v1alpha1.WorkspaceReady, Status: metav1.ConditionTrue, Reason: "Ready"})
		return env.Client.Status().Update(ctx, &ws)
	})
	if err != nil {
		return fmt.Errorf("workspace status: %w", err)
	}
	return nil
}

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// provision does the GPR controller's part: the GPR holds nodes from now.
func provision(t *testing.T, id string, nodes ...string) {
	t.Helper()
	setGPRStatus(t, id, func(s *v1alpha1.GPUProvisionRequestStatus) {
		now := metav1.NewTime(time.Now())
		s.ProvisioningStatus = v1alpha1.GPRProvisioned
		s.InternalState = v1alpha1.StateProvisioned
		s.Nodes = nodes
		s.NumGpusAllocated = int32(len(nodes))
		s.StartTimestamp = &now
	})
}

func setGPRStatus(t *testing.T, id string, f func(*v1alpha1.GPUProvisionRequestStatus)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var g v1alpha1.GPUProvisionRequest
		if err := env.Client.Get(ctx, types.NamespacedName{Name: id}, &g); err != nil {
			return err
		}
		f(&g.Status)
		return env.Client.Status().Update(ctx, &g)
	})
	if err != nil {
		t.Fatalf("GPR %s status: %v", id, err)
	}
}

// addNode adds a simulated GPU node and removes it when the test ends.
func addNode(t *testing.T, n testenv.GPUNode) {
	t.Helper()
	if _, err := env.AddGPUNode(context.Background(), n); err != nil {
		t.Fatalf("add node %s: %v", n.Name, err)
	}
	t.Cleanup(func() {
		_ = env.Kube.CoreV1().Nodes().Delete(context.Background(), n.Name, metav1.DeleteOptions{})
	})
}

func keyOf(name string) types.NamespacedName { return types.NamespacedName{Name: name} }
