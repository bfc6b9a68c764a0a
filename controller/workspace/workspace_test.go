package workspace_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/workspace"
)

// TestWorkspace: namespaces are created (or adopted) and labelled, each
// gets the ServiceAccount and RoleBinding, the ServiceAccount can work in
// the workspace's namespaces and nowhere else, and deleting the workspace
// releases its GPR and removes RBAC and labels but keeps the namespaces
// and their data.
func TestWorkspace(t *testing.T) {
	h := newWorld(t)
	name := h.name("ws")
	existing, created := name+"-data", name+"-new"

	// A namespace with user data exists before the workspace.
	if err := env.Client.Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: existing}}); err != nil {
		t.Fatal(err)
	}
	data := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: existing}, Data: map[string]string{"k": "v"}}
	if err := env.Client.Create(h.ctx, data); err != nil {
		t.Fatal(err)
	}
	h.workspace("ws", "data", "new")
	node := h.node("n1")
	id := h.oneDayGPR("g", name)

	h.eventually(func() error {
		var ws v1alpha1.Workspace
		if err := env.Client.Get(h.ctx, client.ObjectKey{Name: name}, &ws); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(ws.Status.Conditions, v1alpha1.WorkspaceReady) {
			return fmt.Errorf("workspace not Ready: %+v", ws.Status.Conditions)
		}
		if ws.Status.ServiceAccount != workspace.ServiceAccountName || ws.Status.ActiveGPR != id {
			return fmt.Errorf("workspace status = %+v", ws.Status)
		}
		if !slices.Contains(ws.Finalizers, v1alpha1.FinalizerWorkspace) {
			return fmt.Errorf("no finalizer: %v", ws.Finalizers)
		}
		return nil
	})
	wantSubjects := []rbacv1.Subject{
		{Kind: "ServiceAccount", Name: workspace.ServiceAccountName, Namespace: existing},
		{Kind: "ServiceAccount", Name: workspace.ServiceAccountName, Namespace: created},
	}
	for _, ns := range []string{existing, created} {
		var n corev1.Namespace
		if err := env.Client.Get(h.ctx, client.ObjectKey{Name: ns}, &n); err != nil {
			t.Fatal(err)
		}
		if n.Labels[v1alpha1.LabelWorkspace] != name {
			t.Errorf("namespace %s labels %v", ns, n.Labels)
		}
		if err := env.Client.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: workspace.ServiceAccountName}, &corev1.ServiceAccount{}); err != nil {
			t.Errorf("ServiceAccount in %s: %v", ns, err)
		}
		var rb rbacv1.RoleBinding
		if err := env.Client.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: workspace.RoleBindingName}, &rb); err != nil {
			t.Fatalf("RoleBinding in %s: %v", ns, err)
		}
		if diff := cmp.Diff(wantSubjects, rb.Subjects); diff != "" {
			t.Errorf("RoleBinding subjects in %s (-want +got):\n%s", ns, diff)
		}
		if rb.RoleRef.Name != workspace.ClusterRoleName {
			t.Errorf("RoleBinding in %s refers to %v", ns, rb.RoleRef)
		}
	}
	h.eventually(func() error {
		return env.Client.Get(h.ctx, client.ObjectKey{Name: workspace.ClusterRoleName}, &rbacv1.ClusterRole{})
	})

	// What the workspace's ServiceAccount may do.
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + existing + ":" + workspace.ServiceAccountName}
	sa := kubernetes.NewForConfigOrDie(cfg)
	if _, err := sa.CoreV1().ConfigMaps(created).Create(h.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("workspace ServiceAccount cannot create a ConfigMap in its other namespace: %v", err)
	}
	if _, err := sa.CoreV1().Pods(existing).List(h.ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("workspace ServiceAccount cannot list pods in its namespace: %v", err)
	}
	if _, err := sa.CoreV1().Pods(metav1.NamespaceDefault).List(h.ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing pods in default: %v, want Forbidden", err)
	}
	if _, err := sa.RbacV1().RoleBindings(existing).List(h.ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing RoleBindings in its namespace: %v, want Forbidden", err)
	}

	// Dropping a namespace from the spec releases it and narrows the
	// RoleBinding of the other.
	var ws v1alpha1.Workspace
	if err := env.Client.Get(h.ctx, client.ObjectKey{Name: name}, &ws); err != nil {
		t.Fatal(err)
	}
	orig := ws.DeepCopy()
	ws.Spec.Namespaces = ws.Spec.Namespaces[:1]
	if err := env.Client.Patch(h.ctx, &ws, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	h.eventually(func() error {
		var rb rbacv1.RoleBinding
		if err := env.Client.Get(h.ctx, client.ObjectKey{Namespace: existing, Name: workspace.RoleBindingName}, &rb); err != nil {
			return err
		}
		if diff := cmp.Diff(wantSubjects[:1], rb.Subjects); diff != "" {
			return fmt.Errorf("RoleBinding subjects in %s (-want +got):\n%s", existing, diff)
		}
		return released(h, created)
	})

	h.eventually(func() error { return h.boundTo(node, name, id) })
	if err := env.Client.Delete(h.ctx, &v1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	h.eventually(func() error {
		err := env.Client.Get(h.ctx, client.ObjectKey{Name: name}, &v1alpha1.Workspace{})
		if err == nil {
			return fmt.Errorf("workspace %s still exists", name)
		}
		return client.IgnoreNotFound(err)
	})
	if err := env.Client.Get(h.ctx, client.ObjectKey{Name: id}, &v1alpha1.GPUProvisionRequest{}); !apierrors.IsNotFound(err) {
		t.Errorf("GPR of the deleted workspace: %v, want NotFound", err)
	}
	if err := h.boundTo(node, "", ""); err != nil {
		t.Error(err)
	}
	for _, ns := range []string{existing, created} {
		if err := released(h, ns); err != nil {
			t.Error(err)
		}
	}
	if err := env.Client.Get(h.ctx, client.ObjectKeyFromObject(data), &corev1.ConfigMap{}); err != nil {
		t.Errorf("user data after workspace deletion: %v", err)
	}
}

// released checks that namespace ns still exists but no longer carries the
// workspace label, ServiceAccount or RoleBinding.
func released(h *world, ns string) error {
	var n corev1.Namespace
	if err := env.Client.Get(h.ctx, client.ObjectKey{Name: ns}, &n); err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	if n.DeletionTimestamp != nil {
		return fmt.Errorf("namespace %s is being deleted", ns)
	}
	if l, ok := n.Labels[v1alpha1.LabelWorkspace]; ok {
		return fmt.Errorf("namespace %s keeps label %s=%s", ns, v1alpha1.LabelWorkspace, l)
	}
	for _, o := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.RoleBinding{}} {
		key := client.ObjectKey{Namespace: ns, Name: workspace.ServiceAccountName}
		if _, isRB := o.(*rbacv1.RoleBinding); isRB {
			key.Name = workspace.RoleBindingName
		}
		if err := env.Client.Get(h.ctx, key, o); !apierrors.IsNotFound(err) {
			return fmt.Errorf("%T %v: %v, want NotFound", o, key, err)
		}
	}
	return nil
}

// TestWorkspaceNamespaceConflict: a namespace of another workspace is not
// taken over; the workspace reports it.
func TestWorkspaceNamespaceConflict(t *testing.T) {
	h := newWorld(t)
	a := h.workspace("a", "shared")
	h.eventually(func() error {
		var ws v1alpha1.Workspace
		if err := env.Client.Get(h.ctx, client.ObjectKey{Name: a}, &ws); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(ws.Status.Conditions, v1alpha1.WorkspaceReady) {
			return fmt.Errorf("workspace %s not Ready", a)
		}
		return nil
	})
	b := &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: h.name("b"), Labels: h.labels()},
		Spec: v1alpha1.WorkspaceSpec{Username: "b", Clusters: []string{h.cluster},
			Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: h.name("a-shared")}}},
	}
	if err := env.Client.Create(h.ctx, b); err != nil {
		t.Fatal(err)
	}
	h.eventually(func() error {
		var ws v1alpha1.Workspace
		if err := env.Client.Get(h.ctx, client.ObjectKeyFromObject(b), &ws); err != nil {
			return err
		}
		c := meta.FindStatusCondition(ws.Status.Conditions, v1alpha1.WorkspaceReady)
		want := "namespace " + h.name("a-shared") + " belongs to workspace " + a
		if c == nil || c.Status != metav1.ConditionFalse || c.Message != want {
			return fmt.Errorf("Ready = %+v, want False: %s", c, want)
		}
		return nil
	})
	var ns corev1.Namespace
	if err := env.Client.Get(h.ctx, client.ObjectKey{Name: h.name("a-shared")}, &ns); err != nil {
		t.Fatal(err)
	}
	if ns.Labels[v1alpha1.LabelWorkspace] != a {
		t.Errorf("namespace label %q, want %q", ns.Labels[v1alpha1.LabelWorkspace], a)
	}
}
