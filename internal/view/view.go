// Package view is the read model the API shares between its REST reads,
// its event stream and (through the REST operations) MCP: the plan of what
// the cache holds now, the timeline drawn from it, estimates for would-be
// GPRs, live costs and GPU use. It reads only: the informer cache, the
// worker clusters' nodes, and a workspace policy live when the cache has
// none yet.
package view

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/snapshot"
)

// Workers is what the view needs of the worker cluster registry
// (internal/clusters.Registry): their nodes, each labelled with its
// cluster. If it also has OnChange(func()), every change of a worker's
// nodes or readiness invalidates the plan.
type Workers interface {
	Nodes(ctx context.Context) ([]*corev1.Node, error)
}

// changeNotifier is the part of the worker cluster registry
// (internal/clusters.Registry.OnChange) that tells of every change of a
// worker's nodes or readiness.
type changeNotifier interface {
	OnChange(func())
}

// Config is what a View reads from.
type Config struct {
	// Cache is the informer cache the API reads. Required.
	Cache client.Reader
	// Live reads what the cache may not hold yet (a workspace policy
	// written a moment ago); nil: the cache alone.
	Live client.Reader
	// Now is the clock. Required.
	Now func() time.Time
	// Prices are the operator's prices; nil: costs are empty.
	Prices domain.Prices
	// DefaultCluster is the cluster of nodes without a cluster label.
	DefaultCluster string
	// Workers are the registered worker clusters; nil without.
	Workers Workers
}

// View is the read model over a Config. Its methods are safe for
// concurrent use.
type View struct {
	cfg   Config
	plans planCache
}

// New makes a View.
func New(cfg Config) *View { return &View{cfg: cfg} }

// ReadError is a failed read of the cluster: What names what was read,
// for the answer the API makes of it.
type ReadError struct {
	What string
	Err  error
}

func (e *ReadError) Error() string { return fmt.Sprintf("read %s: %v", e.What, e.Err) }

// Unwrap is the read's own error.
func (e *ReadError) Unwrap() error { return e.Err }

func readErr(err error, what string) error { return &ReadError{What: what, Err: err} }

// Node is a GPU node with its GPU facts.
type Node struct {
	*corev1.Node
	domain.GPUNode
}

// snapshots reads what a plan is made of from the cache (and the workers'
// nodes), as the GPR controller's pass does: internal/snapshot.
func (v *View) snapshots() snapshot.Reader {
	return snapshot.Reader{Client: v.cfg.Cache, Workers: v.cfg.Workers, ListOptions: []client.ListOption{client.UnsafeDisableDeepCopy}}
}

// AllNodes are the nodes of the cache and every worker cluster's. The
// cache's own objects: read them, never change them.
func (v *View) AllNodes(ctx context.Context) ([]*corev1.Node, error) {
	nodes, err := v.snapshots().Nodes(ctx)
	if err != nil {
		return nil, readErr(err, "nodes")
	}
	return nodes, nil
}

// Nodes lists the GPU nodes of every cluster, by name, with their GPU
// facts (domain.GPUFacts, with the configured default cluster). Read the
// Node objects, never change them.
func (v *View) Nodes(ctx context.Context) ([]Node, error) {
	all, err := v.AllNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(all))
	for _, n := range all {
		if f, ok := domain.GPUFacts(n, v.cfg.DefaultCluster); ok {
			out = append(out, Node{Node: n, GPUNode: f})
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.GPUNode.Name, b.GPUNode.Name) })
	return out, nil
}

// Policy is the policy of a workspace, nil when it has none: from the
// cache, or read live when the cache has none yet.
func (v *View) Policy(ctx context.Context, workspace string) (*v1alpha1.WorkspacePolicy, error) {
	var pol v1alpha1.WorkspacePolicy
	key := types.NamespacedName{Name: workspace}
	err := v.cfg.Cache.Get(ctx, key, &pol)
	if apierrors.IsNotFound(err) && v.cfg.Live != nil {
		err = v.cfg.Live.Get(ctx, key, &pol)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, readErr(err, fmt.Sprintf("workspace policy %q", workspace))
	}
	return &pol, nil
}
