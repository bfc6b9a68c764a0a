package workspace

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Names of the RBAC objects gpuspace keeps for workspaces.
const (
	// ClusterRoleName is the ClusterRole workspace users get in each
	// namespace of their workspace, through a RoleBinding.
	ClusterRoleName = "gpuspace-workspace-user"
	// RoleBindingName is the RoleBinding in each workspace namespace.
	RoleBindingName = "gpuspace-workspace-user"
	// ServiceAccountName is the workspace's ServiceAccount, one in each of
	// its namespaces; the REST API mints kubeconfig tokens for it.
	ServiceAccountName = "gpuspace-workspace"
)

var (
	readWrite = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	readOnly  = []string{"get", "list", "watch"}
)

// ClusterRole returns the ClusterRole workspace users are bound to: like
// the built-in "edit" role, for the workloads ML teams run, but with no
// access to RBAC, no ServiceAccount tokens and nothing cluster-scoped.
// Bound only by RoleBindings, it grants nothing outside the workspace's
// namespaces. manifests/rbac/workspace-user-clusterrole.yaml is this object;
// a test keeps them equal.
func ClusterRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   ClusterRoleName,
			Labels: map[string]string{"app.kubernetes.io/part-of": "gpuspace"},
		},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Verbs: readWrite, Resources: []string{
				"configmaps", "endpoints", "persistentvolumeclaims", "pods", "pods/attach", "pods/exec",
				"pods/portforward", "pods/proxy", "replicationcontrollers", "replicationcontrollers/scale",
				"secrets", "services", "services/proxy",
			}},
			{APIGroups: []string{""}, Verbs: []string{"create"}, Resources: []string{"pods/eviction"}},
			{APIGroups: []string{""}, Verbs: readOnly, Resources: []string{
				"events", "limitranges", "namespaces", "pods/log", "pods/status", "resourcequotas", "serviceaccounts",
			}},
			{APIGroups: []string{"apps"}, Verbs: readWrite, Resources: []string{
				"daemonsets", "deployments", "deployments/scale", "replicasets", "replicasets/scale",
				"statefulsets", "statefulsets/scale",
			}},
			{APIGroups: []string{"batch"}, Verbs: readWrite, Resources: []string{"cronjobs", "jobs"}},
			{APIGroups: []string{"autoscaling"}, Verbs: readWrite, Resources: []string{"horizontalpodautoscalers"}},
			{APIGroups: []string{"policy"}, Verbs: readWrite, Resources: []string{"poddisruptionbudgets"}},
			{APIGroups: []string{"networking.k8s.io"}, Verbs: readWrite, Resources: []string{"ingresses", "networkpolicies"}},
			{APIGroups: []string{"discovery.k8s.io"}, Verbs: readOnly, Resources: []string{"endpointslices"}},
			{APIGroups: []string{"events.k8s.io"}, Verbs: readOnly, Resources: []string{"events"}},
			{APIGroups: []string{"metrics.k8s.io"}, Verbs: readOnly, Resources: []string{"pods"}},
		},
	}
}

// EnsureClusterRole creates the workspace-user ClusterRole, or restores its
// rules, so that a cluster works without applying manifests first. It reads
// through r (pass an uncached reader, so that no ClusterRole informer is
// started for one object) and writes through c.
func EnsureClusterRole(ctx context.Context, r client.Reader, c client.Writer) error {
	want := ClusterRole()
	var cur rbacv1.ClusterRole
	err := r.Get(ctx, client.ObjectKey{Name: want.Name}, &cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ClusterRole %s: %w", want.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("get ClusterRole %s: %w", want.Name, err)
	}
	if equality.Semantic.DeepEqual(cur.Rules, want.Rules) {
		return nil
	}
	cur.Rules = want.Rules
	if err := c.Update(ctx, &cur); err != nil {
		return fmt.Errorf("update ClusterRole %s: %w", want.Name, err)
	}
	return nil
}
