package workspace

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// Clusters is what the controller needs of the worker cluster registry
// (internal/clusters.Registry).
type Clusters interface {
	// Names are the local cluster and every registered one.
	Names() []string
	// Local is the cluster the controller runs in.
	Local() string
	// Client and APIReader reach a registered cluster.
	Client(cluster string) (client.Client, bool)
	APIReader(cluster string) (client.Reader, bool)
	// Ready reports whether a cluster is reachable now.
	Ready(cluster string) bool
}

// WithClusters makes the controller keep a workspace's namespaces,
// ServiceAccount and RoleBindings in each registered cluster the workspace
// spans (a namespace's clusters, if it names any), and remove them from a
// registered cluster the workspace drops. The cluster the controller runs
// in keeps them as before, whatever the workspace's clusters.
func (r *Reconciler) WithClusters(c Clusters) *Reconciler {
	r.clusters = c
	return r
}

// target is one cluster the controller writes a workspace's objects in:
// client writes, reader reads ServiceAccounts and RoleBindings uncached,
// nsReader reads Namespaces (the manager's cache locally; uncached in a
// worker, which the hub does not cache Namespaces of).
type target struct {
	name             string
	local            bool
	client           client.Client
	reader, nsReader client.Reader
}

// local is the cluster the controller runs in.
func (r *Reconciler) local() target {
	name := v1alpha1.DefaultCluster
	if r.clusters != nil {
		name = r.clusters.Local()
	}
	return target{name: name, local: true, client: r.client, reader: r.apiReader, nsReader: r.client}
}

// workers are the registered clusters other than the local one that are
// reachable now, and those that are not.
func (r *Reconciler) workers() (ready []target, unreachable []string) {
	if r.clusters == nil {
		return nil, nil
	}
	for _, name := range r.clusters.Names() {
		if name == r.clusters.Local() {
			continue
		}
		c, ok1 := r.clusters.Client(name)
		rd, ok2 := r.clusters.APIReader(name)
		if !ok1 || !ok2 || !r.clusters.Ready(name) {
			unreachable = append(unreachable, name)
			continue
		}
		ready = append(ready, target{name: name, client: c, reader: rd, nsReader: rd})
	}
	return ready, unreachable
}

// ensure keeps the workspace's objects in the local cluster and in each
// reachable worker it spans, and removes them from reachable workers it
// does not span. Problems in a worker are prefixed with its name; a
// worker of the workspace that cannot be reached is a problem too.
func (r *Reconciler) ensure(ctx context.Context, ws *v1alpha1.Workspace) ([]string, error) {
	problems, err := r.local().ensure(ctx, ws)
	ready, unreachable := r.workers()
	var errs []error
	for _, t := range ready {
		if !slices.Contains(ws.Spec.Clusters, t.name) {
			if cerr := t.cleanup(ctx, ws.Name, nil); cerr != nil {
				errs = append(errs, fmt.Errorf("cluster %s: %w", t.name, cerr))
			}
			continue
		}
		p, werr := t.ensure(ctx, ws)
		for _, m := range p {
			problems = append(problems, "cluster "+t.name+": "+m)
		}
		if werr != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", t.name, werr))
		}
	}
	for _, name := range unreachable {
		if slices.Contains(ws.Spec.Clusters, name) {
			problems = append(problems, "cluster "+name+" is not reachable")
		}
	}
	return problems, errors.Join(append([]error{err}, errs...)...)
}

// cleanupAll removes the workspace's objects from every reachable cluster.
func (r *Reconciler) cleanupAll(ctx context.Context, ws string) error {
	errs := []error{r.local().cleanup(ctx, ws, nil)}
	ready, _ := r.workers()
	for _, t := range ready {
		if err := t.cleanup(ctx, ws, nil); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", t.name, err))
		}
	}
	return errors.Join(errs...)
}
