// Package snapshot reads what a plan is made of — GPRs, the nodes of every
// cluster and the WorkspacePolicies — from a client.Reader (a cache, or the
// kube-apiserver for a live read), and turns it into the planner's input.
// The GPR controller's pass and the API's read model (plan view,
// estimates) read through it, so they plan over the same objects in the
// same way.
package snapshot

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/holdtime"
	"github.com/gpuspace/gpuspace/internal/planner"
)

// Workers are the registered worker clusters' nodes
// (internal/clusters.Registry.Nodes), each labelled with its cluster.
type Workers interface {
	Nodes(ctx context.Context) ([]*corev1.Node, error)
}

// Reader reads snapshots.
type Reader struct {
	// Client reads the local cluster's objects.
	Client client.Reader
	// Workers adds the worker clusters' nodes; nil: the local cluster is
	// the only one.
	Workers Workers
	// ListOptions go with every list, e.g. client.UnsafeDisableDeepCopy
	// for a reader that never changes what it reads.
	ListOptions []client.ListOption
}

// Snapshot is what a plan is made of.
type Snapshot struct {
	GPRs     []*v1alpha1.GPUProvisionRequest
	Nodes    []*corev1.Node
	Policies domain.Policies
	// Topologies say which topology domains each node is in (topology.go).
	Topologies domain.Topologies
}

// Read reads a snapshot.
func (r Reader) Read(ctx context.Context) (Snapshot, error) {
	items, err := r.GPRs(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{GPRs: make([]*v1alpha1.GPUProvisionRequest, len(items))}
	for i := range items {
		s.GPRs[i] = &items[i]
	}
	if s.Nodes, err = r.Nodes(ctx); err != nil {
		return Snapshot{}, err
	}
	if s.Policies, err = r.Policies(ctx); err != nil {
		return Snapshot{}, err
	}
	if s.Topologies, err = r.Topologies(ctx); err != nil {
		return Snapshot{}, err
	}
	return s, nil
}

// GPRs lists the GPRs.
func (r Reader) GPRs(ctx context.Context) ([]v1alpha1.GPUProvisionRequest, error) {
	var list v1alpha1.GPUProvisionRequestList
	if err := r.Client.List(ctx, &list, r.ListOptions...); err != nil {
		return nil, fmt.Errorf("list GPRs: %w", err)
	}
	return list.Items, nil
}

// Nodes lists the local cluster's nodes, then every worker's.
func (r Reader) Nodes(ctx context.Context) ([]*corev1.Node, error) {
	var list corev1.NodeList
	if err := r.Client.List(ctx, &list, r.ListOptions...); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := make([]*corev1.Node, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	if r.Workers == nil {
		return out, nil
	}
	workers, err := r.Workers.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	return append(out, workers...), nil
}

// Policies lists the WorkspacePolicies, by workspace.
func (r Reader) Policies(ctx context.Context) (domain.Policies, error) {
	var list v1alpha1.WorkspacePolicyList
	if err := r.Client.List(ctx, &list, r.ListOptions...); err != nil {
		return nil, fmt.Errorf("list workspace policies: %w", err)
	}
	return domain.PolicyIndex(list.Items), nil
}

// Input is the planner's input for the snapshot at now
// (planner.InputOf with the snapshot's policies); defaultCluster is the
// cluster of nodes without a gpuspace.io/cluster label.
func (s Snapshot) Input(now time.Time, defaultCluster string) (planner.Input, map[string]string) {
	return planner.InputOf(now, s.GPRs, s.Nodes, defaultCluster, planner.WithPolicies(s.Policies.Of), planner.WithTopologies(s.Topologies))
}

// Likely is the likely start of every queued GPR of in, the input of this
// snapshot: planner.LikelyEstimates with the GPRs ahead predicted from
// their workspaces' finished GPRs in the snapshot (holdtime.Default). plan
// is planner.Compute(in): its estimates are the latest starts, and the
// only decisions ever acted on.
func (s Snapshot) Likely(in planner.Input, plan planner.Plan) domain.Estimates {
	return planner.LikelyEstimates(in, plan, holdtime.ForPlan{Predictor: s.Holds()})
}

// Holds predicts hold times from the workspaces' finished GPRs in the
// snapshot (holdtime.Default): what Likely plans with.
func (s Snapshot) Holds() holdtime.Predictor {
	return holdtime.Default(holdtime.FromGPRs(s.GPRs, holdtime.Keep))
}
