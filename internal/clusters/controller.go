package clusters

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// ControllerName names the Cluster controller and its event source.
const ControllerName = "gpuspace-cluster"

// credentialRecheck is how often a running worker's Secret is read again,
// so a rotated credential is picked up without an event on the Cluster.
const credentialRecheck = time.Minute

// SetupWithManager runs the registry in mgr: a controller of Cluster
// objects that starts and stops workers. It runs on every replica (the
// API of each reads the workers), and writes status only on the leader.
func (r *Registry) SetupWithManager(mgr manager.Manager, skipNameValidation *bool) error {
	r.elected = mgr.Elected()
	no := false
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		r.stopAll()
		return nil
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.Cluster{}).
		WithOptions(controller.Options{NeedLeaderElection: &no, SkipNameValidation: skipNameValidation}).
		Complete(r)
}

// Reconcile starts, restarts or stops the worker of one Cluster.
func (r *Registry) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logr.FromContextOrDiscard(ctx)
	var c v1alpha1.Cluster
	err := r.hub.Get(ctx, req.NamespacedName, &c)
	if apierrors.IsNotFound(err) || (err == nil && c.DeletionTimestamp != nil) {
		r.remove(req.Name)
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if c.Name == r.opts.Local {
		// The cluster gpuspace runs in needs no worker of its own.
		return reconcile.Result{}, nil
	}
	var sec corev1.Secret
	err = r.hubReader.Get(ctx, client.ObjectKey{Namespace: r.opts.Namespace, Name: c.Spec.KubeconfigSecret}, &sec)
	if err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	var key string
	if err == nil {
		key = fmt.Sprintf("%s/%s/%s", sec.UID, sec.ResourceVersion, c.Spec.Context)
	}
	if w := r.worker(c.Name); w != nil && w.key == key && key != "" {
		return reconcile.Result{RequeueAfter: credentialRecheck}, nil
	}
	r.remove(c.Name)
	if err != nil {
		return reconcile.Result{RequeueAfter: credentialRecheck}, r.credentialFailed(ctx, &c,
			fmt.Sprintf("Secret %s/%s not found", r.opts.Namespace, c.Spec.KubeconfigSecret))
	}
	cfg, err := RESTConfig(sec.Data[v1alpha1.KubeconfigKey], c.Spec.Context)
	if err != nil {
		return reconcile.Result{RequeueAfter: credentialRecheck}, r.credentialFailed(ctx, &c,
			fmt.Sprintf("Secret %s/%s: %v", r.opts.Namespace, c.Spec.KubeconfigSecret, err))
	}
	w, err := r.start(&c, key, cfg)
	if err != nil {
		return reconcile.Result{RequeueAfter: credentialRecheck}, r.credentialFailed(ctx, &c, err.Error())
	}
	r.mu.Lock()
	r.workers[c.Name] = w
	r.mu.Unlock()
	log.Info("started worker cluster", "cluster", c.Name, "server", w.server)
	return reconcile.Result{RequeueAfter: credentialRecheck}, nil
}

// credentialFailed sets Ready=False with reason InvalidCredential.
func (r *Registry) credentialFailed(ctx context.Context, c *v1alpha1.Cluster, msg string) error {
	st := state{reason: v1alpha1.ClusterReasonBadCredential, message: msg, at: time.Now()}
	old := storedState(c)
	if !r.isLeader() || (old.reason == st.reason && old.message == st.message) {
		return nil
	}
	nc := c.DeepCopy()
	setReady(nc, st)
	if err := r.hub.Status().Patch(ctx, nc, client.MergeFrom(c)); err != nil {
		return err
	}
	if cond := c.Status.Conditions; len(cond) == 0 || old.ready {
		r.readyEvent(nc, st)
	}
	r.notify(nc, nil)
	return nil
}

// remove stops and forgets the worker of name, if any.
func (r *Registry) remove(name string) {
	r.mu.Lock()
	w := r.workers[name]
	delete(r.workers, name)
	r.mu.Unlock()
	if w == nil {
		return
	}
	w.stop()
	c := &v1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
	r.notify(c, nil)
}

// stopAll stops every worker (the manager is stopping).
func (r *Registry) stopAll() {
	r.mu.Lock()
	ws := r.workers
	r.workers = map[string]*worker{}
	r.mu.Unlock()
	for _, w := range ws {
		w.stop()
	}
}
