// Package workspace is the Workspace controller: it creates a workspace's
// missing namespaces, labels them gpuspace.io/workspace=<name>, and keeps a
// ServiceAccount and a RoleBinding to the gpuspace-workspace-user
// ClusterRole in each. Deleting a workspace (behind a finalizer) removes
// its GPRs, waits until its nodes are released, then removes its RBAC and
// namespace labels. Namespaces are never deleted: they hold user data.
package workspace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/index"
)

// ControllerName names the controller.
const ControllerName = "gpuspace-workspace"

// Timings of the controller's polls: while a deleted workspace waits for
// its nodes to be released, and a periodic pass that restores RBAC objects
// someone deleted (they are read uncached and not watched).
const (
	finalizePoll = 500 * time.Millisecond
	resync       = 10 * time.Minute
)

// Reconciler reconciles Workspaces.
type Reconciler struct {
	client    client.Client
	apiReader client.Reader
	// clusters are the registered worker clusters (WithClusters); nil:
	// only the cluster the controller runs in.
	clusters Clusters
	// recorder reports refused Workspaces (WithRecorder); nil: none.
	recorder events.EventRecorder
}

// New returns a Reconciler. ServiceAccounts and RoleBindings are read
// through apiReader, so that the manager does not cache every one in the
// cluster.
func New(c client.Client, apiReader client.Reader) *Reconciler {
	return &Reconciler{client: c, apiReader: apiReader}
}

// SetupWithManager registers the controller and the GPR index it uses.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, skipNameValidation *bool) error {
	if err := index.AddGPRWorkspace(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.Workspace{}).
		// The workspace's GPR summary changes only when a GPR comes, goes
		// or changes phase; estimate updates are ignored.
		Watches(&v1alpha1.GPUProvisionRequest{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: o.(*v1alpha1.GPUProvisionRequest).Spec.Workspace}}}
			}), builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.GPUProvisionRequest)
			n, ok2 := e.ObjectNew.(*v1alpha1.GPUProvisionRequest)
			return !ok1 || !ok2 || o.Status.ProvisioningStatus != n.Status.ProvisioningStatus
		}})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				if ws := o.GetLabels()[v1alpha1.LabelWorkspace]; ws != "" {
					return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: ws}}}
				}
				return nil
			})).
		WithOptions(controller.Options{SkipNameValidation: skipNameValidation}).
		Complete(r)
}

// Reconcile brings one workspace's namespaces and RBAC in line with its
// spec, or tears them down when it is deleted.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (res reconcile.Result, err error) {
	defer func() {
		if apierrors.IsConflict(err) {
			res, err = reconcile.Result{RequeueAfter: 200 * time.Millisecond}, nil
		}
		if err != nil {
			metrics.ReconcileErrors.WithLabelValues(ControllerName).Inc()
		}
	}()
	var ws v1alpha1.Workspace
	if err := r.client.Get(ctx, req.NamespacedName, &ws); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone without our finalizer (it was removed by hand): drop what
			// is left of it, except namespaces.
			return reconcile.Result{}, r.cleanupAll(ctx, req.Name)
		}
		return reconcile.Result{}, fmt.Errorf("get workspace: %w", err)
	}
	if !ws.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(&ws, v1alpha1.FinalizerWorkspace) {
			return reconcile.Result{}, nil
		}
		done, err := r.finalize(ctx, &ws)
		if err != nil || !done {
			return reconcile.Result{RequeueAfter: finalizePoll}, err
		}
		orig := ws.DeepCopy()
		controllerutil.RemoveFinalizer(&ws, v1alpha1.FinalizerWorkspace)
		if err := r.client.Patch(ctx, &ws, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, fmt.Errorf("remove finalizer: %w", err)
		}
		logr.FromContextOrDiscard(ctx).Info("workspace deleted; namespaces kept", "workspace", ws.Name)
		return reconcile.Result{}, nil
	}
	// Admission before anything is created: a refused workspace is
	// marked and left alone, and looked at again on the resync (the
	// workspace that owns its namespace may go).
	why, err := r.refusal(ctx, &ws)
	if err != nil {
		return reconcile.Result{}, err
	}
	if why != "" {
		return reconcile.Result{RequeueAfter: resync}, r.refuse(ctx, &ws, why)
	}
	if !controllerutil.ContainsFinalizer(&ws, v1alpha1.FinalizerWorkspace) {
		orig := ws.DeepCopy()
		controllerutil.AddFinalizer(&ws, v1alpha1.FinalizerWorkspace)
		if err := r.client.Patch(ctx, &ws, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}

	problems, err := r.ensure(ctx, &ws)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if serr := r.updateStatus(ctx, &ws, problems); serr != nil {
		err = errors.Join(err, serr)
	}
	return reconcile.Result{RequeueAfter: resync}, err
}

// ensure creates and labels the workspace's namespaces and their RBAC, and
// removes gpuspace's objects from namespaces no longer in the spec. It
// returns problems users must fix (a namespace of another workspace) and
// errors to retry.
func (t target) ensure(ctx context.Context, ws *v1alpha1.Workspace) (problems []string, err error) {
	var ok []string
	for _, wn := range ws.Spec.Namespaces {
		name := wn.Namespace
		if !t.local && len(wn.Clusters) > 0 && !slices.Contains(wn.Clusters, t.name) {
			continue
		}
		var ns corev1.Namespace
		err := t.nsReader.Get(ctx, client.ObjectKey{Name: name}, &ns)
		switch {
		case apierrors.IsNotFound(err):
			ns = corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.LabelWorkspace: ws.Name}}}
			if err := t.client.Create(ctx, &ns); err != nil && !apierrors.IsAlreadyExists(err) {
				return problems, fmt.Errorf("create namespace %s: %w", name, err)
			}
			logr.FromContextOrDiscard(ctx).Info("created namespace", "workspace", ws.Name, "namespace", name, "cluster", t.name)
		case err != nil:
			return problems, fmt.Errorf("get namespace %s: %w", name, err)
		case ns.DeletionTimestamp != nil:
			problems = append(problems, fmt.Sprintf("namespace %s is being deleted", name))
			continue
		case ns.Labels[v1alpha1.LabelWorkspace] == ws.Name:
		case ns.Labels[v1alpha1.LabelWorkspace] != "":
			problems = append(problems, fmt.Sprintf("namespace %s belongs to workspace %s", name, ns.Labels[v1alpha1.LabelWorkspace]))
			continue
		default:
			orig := ns.DeepCopy()
			if ns.Labels == nil {
				ns.Labels = map[string]string{}
			}
			ns.Labels[v1alpha1.LabelWorkspace] = ws.Name
			if err := t.client.Patch(ctx, &ns, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
				return problems, fmt.Errorf("label namespace %s: %w", name, err)
			}
		}
		ok = append(ok, name)
	}
	slices.Sort(ok)
	subjects := make([]rbacv1.Subject, len(ok))
	for i, ns := range ok {
		subjects[i] = rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: ServiceAccountName, Namespace: ns}
	}
	for _, ns := range ok {
		if err := t.ensureRBAC(ctx, ws.Name, ns, subjects); err != nil {
			return problems, err
		}
	}
	return problems, t.cleanup(ctx, ws.Name, ok)
}

// ensureRBAC keeps the workspace ServiceAccount and RoleBinding in ns. The
// RoleBinding names the ServiceAccounts of all the workspace's namespaces,
// so a token of any one of them works in every namespace of the workspace
// and in no other.
func (t target) ensureRBAC(ctx context.Context, ws, ns string, subjects []rbacv1.Subject) error {
	labels := map[string]string{v1alpha1.LabelWorkspace: ws, "app.kubernetes.io/managed-by": "gpuspace"}
	var sa corev1.ServiceAccount
	err := t.reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: ServiceAccountName}, &sa)
	switch {
	case apierrors.IsNotFound(err):
		sa = corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ServiceAccountName, Labels: labels}}
		if err := t.client.Create(ctx, &sa); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ServiceAccount %s/%s: %w", ns, ServiceAccountName, err)
		}
	case err != nil:
		return fmt.Errorf("get ServiceAccount %s/%s: %w", ns, ServiceAccountName, err)
	}

	want := rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: RoleBindingName, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ClusterRoleName},
		Subjects:   subjects,
	}
	var rb rbacv1.RoleBinding
	err = t.reader.Get(ctx, client.ObjectKeyFromObject(&want), &rb)
	switch {
	case apierrors.IsNotFound(err):
		if err := t.client.Create(ctx, &want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create RoleBinding %s/%s: %w", ns, RoleBindingName, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("get RoleBinding %s/%s: %w", ns, RoleBindingName, err)
	case rb.RoleRef != want.RoleRef:
		// roleRef is immutable: replace the binding.
		if err := t.client.Delete(ctx, &rb); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("replace RoleBinding %s/%s: %w", ns, RoleBindingName, err)
		}
		if err := t.client.Create(ctx, &want); err != nil {
			return fmt.Errorf("replace RoleBinding %s/%s: %w", ns, RoleBindingName, err)
		}
		return nil
	case equality.Semantic.DeepEqual(rb.Subjects, want.Subjects) && rb.Labels[v1alpha1.LabelWorkspace] == ws:
		return nil
	}
	rb.Subjects = want.Subjects
	if rb.Labels == nil {
		rb.Labels = map[string]string{}
	}
	rb.Labels[v1alpha1.LabelWorkspace] = ws
	if err := t.client.Update(ctx, &rb); err != nil {
		return fmt.Errorf("update RoleBinding %s/%s: %w", ns, RoleBindingName, err)
	}
	return nil
}

// cleanup removes the workspace's RBAC objects and namespace label from
// every namespace labelled for it except keep. Namespaces themselves stay.
func (t target) cleanup(ctx context.Context, ws string, keep []string) error {
	var list corev1.NamespaceList
	if err := t.nsReader.List(ctx, &list, client.MatchingLabels{v1alpha1.LabelWorkspace: ws}); err != nil {
		return fmt.Errorf("list namespaces of workspace %s: %w", ws, err)
	}
	var errs []error
	for i := range list.Items {
		ns := &list.Items[i]
		if slices.Contains(keep, ns.Name) {
			continue
		}
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: RoleBindingName}}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: ServiceAccountName}}
		for _, o := range []client.Object{rb, sa} {
			if err := t.client.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete %T %s/%s: %w", o, ns.Name, o.GetName(), err))
			}
		}
		orig := ns.DeepCopy()
		delete(ns.Labels, v1alpha1.LabelWorkspace)
		if err := t.client.Patch(ctx, ns, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("unlabel namespace %s: %w", ns.Name, err))
			continue
		}
		logr.FromContextOrDiscard(ctx).Info("released namespace from workspace", "workspace", ws, "namespace", ns.Name)
	}
	return errors.Join(errs...)
}

// finalize deletes the workspace's GPRs and reports whether they are gone
// and no node is bound to the workspace any more (the GPR controller
// unbinds nodes of deleted GPRs and evicts the workspace's pods, which needs
// the namespace labels still in place); then it removes RBAC and labels.
func (r *Reconciler) finalize(ctx context.Context, ws *v1alpha1.Workspace) (bool, error) {
	var gprs v1alpha1.GPUProvisionRequestList
	if err := r.client.List(ctx, &gprs, client.MatchingFields{index.GPRWorkspace: ws.Name}); err != nil {
		return false, fmt.Errorf("list GPRs of workspace %s: %w", ws.Name, err)
	}
	for i := range gprs.Items {
		g := &gprs.Items[i]
		if g.DeletionTimestamp != nil {
			continue
		}
		if err := r.client.Delete(ctx, g); err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("delete GPR %s: %w", g.Name, err)
		}
	}
	if len(gprs.Items) > 0 {
		return false, nil
	}
	var nodes corev1.NodeList
	if err := r.client.List(ctx, &nodes, client.MatchingLabels{v1alpha1.LabelWorkspace: ws.Name}); err != nil {
		return false, fmt.Errorf("list nodes of workspace %s: %w", ws.Name, err)
	}
	if len(nodes.Items) > 0 {
		return false, nil
	}
	return true, r.cleanupAll(ctx, ws.Name)
}

// updateStatus writes the Ready condition and the GPR summary when they
// changed.
func (r *Reconciler) updateStatus(ctx context.Context, ws *v1alpha1.Workspace, problems []string) error {
	var gprs v1alpha1.GPUProvisionRequestList
	if err := r.client.List(ctx, &gprs, client.MatchingFields{index.GPRWorkspace: ws.Name}); err != nil {
		return fmt.Errorf("list GPRs of workspace %s: %w", ws.Name, err)
	}
	st := ws.Status.DeepCopy()
	st.ObservedGeneration = ws.Generation
	st.ServiceAccount = ServiceAccountName
	st.ActiveGPR, st.QueuedGPRs = "", 0
	for _, g := range gprs.Items {
		switch {
		case domain.IsProvisioned(&g):
			st.ActiveGPR = g.Name
		case domain.IsQueued(&g):
			st.QueuedGPRs++
		}
	}
	c := metav1.Condition{
		Type: v1alpha1.WorkspaceReady, Status: metav1.ConditionTrue, Reason: "Ready", ObservedGeneration: ws.Generation,
		Message: "namespaces, ServiceAccounts and RoleBindings are in place",
	}
	if len(problems) > 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "NotReady", strings.Join(problems, "; ")
	}
	meta.SetStatusCondition(&st.Conditions, c)
	if equality.Semantic.DeepEqual(&ws.Status, st) {
		return nil
	}
	ws.Status = *st
	if err := r.client.Status().Update(ctx, ws); err != nil {
		return fmt.Errorf("update workspace %s status: %w", ws.Name, err)
	}
	return nil
}
