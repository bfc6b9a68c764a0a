// Package template is the auto-GPR controller: a GPU pod of a workspace
// that the scheduler plugin holds for lack of a GPR (its PodScheduled
// condition False with reason WaitingForGPR), in a workspace whose
// GPRTemplateBinding has enableAutoGPR and a default template, makes one
// GPR from that template.
//
// Exactly one at a time: none while the workspace has a queued or
// provisioned GPR (domain.NextAutoGPR), so any number of held pods make
// one GPR, and the next only once that one is finished and pods are still
// held. The GPR's name is derived from the workspace and a sequence number
// (domain.AutoGPRName), so a restart or a stale cache that tries the same
// GPR again collides with it instead of making a second. The GPR passes
// admission like any other (admission.DefaultGPR, ValidateGPR, and the
// workspace's policy: ValidateAgainstPolicy) and counts against the
// workspace's limits like any other.
//
// The scheduler's hot path makes no API call for this: PreEnqueue already
// records why a pod is held in its condition, off the hot path; this
// controller watches those conditions through a cache of unscheduled pods
// only (field selector spec.nodeName=""), so it never holds every pod of
// the cluster. Each held pod gets an Event naming the GPR made for it, and
// the plugin's condition names the GPR it now waits for.
package template

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/go-logr/logr"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/admission"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/index"
)

// ControllerName names the controller (logs, metrics, Events).
const ControllerName = "autogpr"

// Event reasons.
const (
	// EventAutoGPRCreated: a GPR was made for held pods.
	EventAutoGPRCreated = "AutoGPRCreated"
	// EventAutoGPRRefused: the default template does not make a valid GPR
	// for the workspace, or is missing.
	EventAutoGPRRefused = "AutoGPRRefused"
	// EventAutoGPRFailed: the last auto GPR failed; no other is made until
	// the template changes.
	EventAutoGPRFailed = "AutoGPRFailed"
)

// maxPodEvents bounds the Events one GPR's creation records on pods.
const maxPodEvents = 10

// Reconciler makes auto GPRs, per workspace. Create it with New.
type Reconciler struct {
	client   client.Client
	pods     client.Reader
	recorder events.EventRecorder
}

// New returns a Reconciler; pods reads unscheduled pods (see
// SetupWithManager).
func New(c client.Client, recorder events.EventRecorder) *Reconciler {
	return &Reconciler{client: c, recorder: recorder}
}

// SetupWithManager registers the controller, and the cache of unscheduled
// pods it watches, with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, skipNameValidation *bool) error {
	// The GPR index by workspace (index.GPRWorkspace) is registered by
	// the workspace controller, which controller.Setup registers first: a
	// cache takes each index once.
	pods, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Field: fields.OneTermEqualSelector("spec.nodeName", "")},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	})
	if err != nil {
		return fmt.Errorf("unscheduled pod cache: %w", err)
	}
	if err := mgr.Add(pods); err != nil {
		return fmt.Errorf("add unscheduled pod cache: %w", err)
	}
	r.pods = pods
	c := mgr.GetClient()
	podToWorkspace := handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, p *corev1.Pod) []reconcile.Request {
		var ns corev1.Namespace
		if err := c.Get(ctx, types.NamespacedName{Name: p.Namespace}, &ns); err != nil {
			return nil
		}
		if ws := ns.Labels[v1alpha1.LabelWorkspace]; ws != "" {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: ws}}}
		}
		return nil
	})
	heldOnly := predicate.TypedFuncs[*corev1.Pod]{
		CreateFunc: func(e event.TypedCreateEvent[*corev1.Pod]) bool { return PodWaitsForGPR(e.Object) },
		UpdateFunc: func(e event.TypedUpdateEvent[*corev1.Pod]) bool {
			return PodWaitsForGPR(e.ObjectNew) && !PodWaitsForGPR(e.ObjectOld)
		},
		DeleteFunc:  func(event.TypedDeleteEvent[*corev1.Pod]) bool { return false },
		GenericFunc: func(event.TypedGenericEvent[*corev1.Pod]) bool { return false },
	}
	byName := func(name string) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		WatchesRawSource(source.Kind(pods, &corev1.Pod{}, podToWorkspace, heldOnly)).
		// A GPR's phase change may let the next auto GPR be made.
		Watches(&v1alpha1.GPUProvisionRequest{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				return byName(o.(*v1alpha1.GPUProvisionRequest).Spec.Workspace)
			}), builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.GPUProvisionRequest)
			n, ok2 := e.ObjectNew.(*v1alpha1.GPUProvisionRequest)
			return !ok1 || !ok2 || domain.Phase(o) != domain.Phase(n)
		}})).
		Watches(&v1alpha1.GPRTemplateBinding{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				return byName(o.(*v1alpha1.GPRTemplateBinding).Spec.Workspace)
			})).
		// A policy that changed may allow (or refuse) the next one.
		Watches(&v1alpha1.WorkspacePolicy{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request { return byName(o.GetName()) })).
		// A template fixed after its GPR failed may be tried again.
		Watches(&v1alpha1.GPRTemplate{}, handler.EnqueueRequestsFromMapFunc(
			func(ctx context.Context, o client.Object) []reconcile.Request {
				var l v1alpha1.GPRTemplateBindingList
				if err := c.List(ctx, &l); err != nil {
					return nil
				}
				var out []reconcile.Request
				for i := range l.Items {
					if admission.BindingUses(&l.Items[i], o.GetName()) {
						out = append(out, byName(l.Items[i].Spec.Workspace)...)
					}
				}
				return out
			})).
		WithOptions(controller.Options{SkipNameValidation: skipNameValidation}).
		Complete(r)
}

// PodWaitsForGPR reports whether the scheduler plugin keeps pod waiting
// for lack of a provisioned GPR: unscheduled, not being deleted, and its PodScheduled
// condition False with reason WaitingForGPR.
func PodWaitsForGPR(p *corev1.Pod) bool {
	if p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return c.Status == corev1.ConditionFalse && c.Reason == v1alpha1.PodReasonWaitingForGPR
		}
	}
	return false
}

// Reconcile makes the workspace's next auto GPR when it is due.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (res reconcile.Result, err error) {
	defer func() {
		if apierrors.IsConflict(err) {
			res, err = reconcile.Result{RequeueAfter: 200 * time.Millisecond}, nil
		}
		if err != nil {
			metrics.ReconcileErrors.WithLabelValues(ControllerName).Inc()
		}
	}()
	log := logr.FromContextOrDiscard(ctx)
	var ws v1alpha1.Workspace
	if err := r.client.Get(ctx, req.NamespacedName, &ws); err != nil || ws.DeletionTimestamp != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var b v1alpha1.GPRTemplateBinding
	if err := r.client.Get(ctx, types.NamespacedName{Name: ws.Name}, &b); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	cluster, tmplName, ok := admission.AutoGPRTemplate(&b, &ws)
	if !ok {
		return reconcile.Result{}, nil
	}
	held, err := r.heldPods(ctx, &ws)
	if err != nil || len(held) == 0 {
		return reconcile.Result{}, err
	}
	var t v1alpha1.GPRTemplate
	if err := r.client.Get(ctx, types.NamespacedName{Name: tmplName}, &t); err != nil {
		if apierrors.IsNotFound(err) {
			r.refuse(held, &b, "default template %q of cluster %q does not exist", tmplName, cluster)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	var list v1alpha1.GPUProvisionRequestList
	if err := r.client.List(ctx, &list, client.MatchingFields{index.GPRWorkspace: ws.Name}); err != nil {
		return reconcile.Result{}, fmt.Errorf("list GPRs of workspace %s: %w", ws.Name, err)
	}
	gprs := make([]*v1alpha1.GPUProvisionRequest, len(list.Items))
	for i := range list.Items {
		gprs[i] = &list.Items[i]
	}
	next := domain.NextAutoGPR(ws.Name, gprs, t.Generation)
	switch {
	case next.Waiting != "":
		return reconcile.Result{}, nil
	case next.Failed != nil:
		r.eventOnce(held, next.Failed, EventAutoGPRFailed,
			"auto-GPR made GPUProvisionRequest %s from template %q and it failed (%s); change the template or create a GPR",
			next.Failed.Name, tmplName, next.Failed.Status.FailureReason)
		return reconcile.Result{}, nil
	}

	g := admission.TemplateGPR(&t, ws.Name, cluster)
	g.Name = next.Name
	g.Labels = map[string]string{
		v1alpha1.LabelAutoGPR:         ws.Name,
		v1alpha1.LabelAutoGPRSequence: strconv.Itoa(next.Sequence),
	}
	g.Annotations = map[string]string{
		v1alpha1.AnnotationTemplate:           t.Name,
		v1alpha1.AnnotationTemplateGeneration: strconv.FormatInt(t.Generation, 10),
	}
	// Admission as for any GPR, the workspace's policy included: an auto
	// GPR counts against its limits like any other.
	var pol *v1alpha1.WorkspacePolicy
	var p v1alpha1.WorkspacePolicy
	switch err := r.client.Get(ctx, types.NamespacedName{Name: ws.Name}, &p); {
	case err == nil:
		pol = &p
	case !apierrors.IsNotFound(err):
		return reconcile.Result{}, err
	}
	admission.DefaultGPR(g, &ws)
	admission.DefaultForPolicy(g, pol)
	errs := admission.ValidateGPR(g, &ws)
	if len(errs) > 0 {
		r.refuse(held, &b, "default template %q does not make a valid GPR for workspace %q: %s", t.Name, ws.Name, admission.Message(g, &ws, errs))
		return reconcile.Result{}, nil
	}
	if errs := admission.ValidateAgainstPolicy(g, pol, domain.CountQueuedOrProvisioned(list.Items, ws.Name)); len(errs) > 0 {
		r.refuse(held, &b, "default template %q: %s", t.Name, admission.PolicyMessage(errs))
		return reconcile.Result{}, nil
	}
	if err := r.client.Create(ctx, g); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Made already (an earlier attempt, another replica): the
			// GPR watch brings it to the cache.
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("create auto GPR %s: %w", g.Name, err)
	}
	log.Info("auto-GPR created a GPR", "workspace", ws.Name, "gpr", g.Name, "template", t.Name, "heldPods", len(held))
	if r.recorder != nil {
		r.recorder.Eventf(g, &b, corev1.EventTypeNormal, EventAutoGPRCreated, "AutoGPR",
			"made from template %q for %d held GPU pod(s) of workspace %s", t.Name, len(held), ws.Name)
		for _, p := range held[:min(len(held), maxPodEvents)] {
			r.recorder.Eventf(p, g, corev1.EventTypeNormal, EventAutoGPRCreated, "AutoGPR",
				"auto-GPR made GPUProvisionRequest %s from template %q; the pod waits for it", g.Name, t.Name)
		}
	}
	return reconcile.Result{}, nil
}

// heldPods returns the workspace's pods the scheduler holds for lack of a
// GPR, oldest first.
func (r *Reconciler) heldPods(ctx context.Context, ws *v1alpha1.Workspace) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, n := range ws.Spec.Namespaces {
		var l corev1.PodList
		if err := r.pods.List(ctx, &l, client.InNamespace(n.Namespace)); err != nil {
			return nil, fmt.Errorf("list pods in %s: %w", n.Namespace, err)
		}
		for i := range l.Items {
			if PodWaitsForGPR(&l.Items[i]) {
				out = append(out, &l.Items[i])
			}
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return out, nil
}

// refuse records why no GPR is made, on the binding and the oldest held
// pod.
func (r *Reconciler) refuse(held []*corev1.Pod, b *v1alpha1.GPRTemplateBinding, format string, args ...any) {
	if r.recorder == nil {
		return
	}
	r.recorder.Eventf(b, nil, corev1.EventTypeWarning, EventAutoGPRRefused, "AutoGPR", format, args...)
	r.recorder.Eventf(held[0], b, corev1.EventTypeWarning, EventAutoGPRRefused, "AutoGPR", format, args...)
}

// eventOnce records a warning on the oldest held pod, related to g.
func (r *Reconciler) eventOnce(held []*corev1.Pod, g *v1alpha1.GPUProvisionRequest, reason, format string, args ...any) {
	if r.recorder != nil {
		r.recorder.Eventf(held[0], g, corev1.EventTypeWarning, reason, "AutoGPR", format, args...)
	}
}
