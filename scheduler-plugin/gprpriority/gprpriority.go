// Package gprpriority is the GPRPriority queue sort plugin: pods whose
// workspace holds (or waits for) a higher-priority GPUProvisionRequest are
// scheduled first; then pod priority; then age, as PrioritySort does.
package gprpriority

import (
	"context"
	"fmt"
	"math"

	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"

	configv1 "github.com/gpuspace/gpuspace/scheduler-plugin/apis/config/v1"
	"github.com/gpuspace/gpuspace/scheduler-plugin/internal/state"
)

// Name is the plugin's name in the registry and in configurations.
const Name = "GPRPriority"

// GPRPriority is the plugin.
type GPRPriority struct {
	state  *state.Shared
	exempt map[string]struct{}
}

var _ fwk.QueueSortPlugin = &GPRPriority{}

// New builds the plugin from its args (GPRPriorityArgs, optional).
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	return newPlugin(ctx, obj, h, state.FromHandle(h))
}

// NewWithClient returns a plugin factory whose plugin lists and watches
// GPRs with newClient instead of a client built from the handle's
// kubeconfig: for schedulers on fake clientsets (benchmarks).
func NewWithClient(newClient state.DynamicClientFunc) func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) {
	return func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		return newPlugin(ctx, obj, h, newClient)
	}
}

func newPlugin(ctx context.Context, obj runtime.Object, h fwk.Handle, newClient state.DynamicClientFunc) (*GPRPriority, error) {
	args, err := configv1.DecodeGPRPriorityArgs(obj)
	if err != nil {
		return nil, err
	}
	s, err := state.For(ctx, h, newClient)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	pl := &GPRPriority{state: s, exempt: make(map[string]struct{}, len(args.ExemptNamespaces))}
	for _, ns := range args.ExemptNamespaces {
		pl.exempt[ns] = struct{}{}
	}
	return pl, nil
}

// Name returns the plugin's name.
func (pl *GPRPriority) Name() string { return Name }

// Less orders the queue: the GPR priority of the entity's workspace
// (exempt namespaces first, pods of no workspace last), then pod priority,
// then the time the entity entered the queue.
//
// The GPR priority is read at comparison time from the informer-fed index.
// If it changes while pods sit in the active queue their heap position is
// not revisited until they are re-queued; GPR priorities change rarely and
// active pods leave the queue within a scheduling cycle.
func (pl *GPRPriority) Less(a, b fwk.QueuedEntityInfo) bool {
	ga, gb := pl.gprPriority(a), pl.gprPriority(b)
	if ga != gb {
		return ga > gb
	}
	pa, pb := a.GetPriority(), b.GetPriority()
	if pa != pb {
		return pa > pb
	}
	return a.GetTimestamp().Before(b.GetTimestamp())
}

// podInfoer is implemented by the queue's pod entities.
type podInfoer interface{ GetPodInfo() fwk.PodInfo }

// namespacer is implemented by pod group entities.
type namespacer interface{ GetNamespace() string }

func namespaceOf(e fwk.QueuedEntityInfo) (string, bool) {
	switch x := e.(type) {
	case podInfoer:
		if pi := x.GetPodInfo(); pi != nil && pi.GetPod() != nil {
			return pi.GetPod().Namespace, true
		}
	case namespacer:
		return x.GetNamespace(), true
	}
	return "", false
}

// gprPriority is the sort key's first part, int64 so that exempt pods sort
// above every GPR priority.
func (pl *GPRPriority) gprPriority(e fwk.QueuedEntityInfo) int64 {
	ns, ok := namespaceOf(e)
	if !ok {
		return 0
	}
	if _, ok := pl.exempt[ns]; ok {
		return math.MaxInt64
	}
	ws := pl.state.NamespaceWorkspace(ns)
	if ws == "" {
		return 0
	}
	return int64(pl.state.GPRs.Workspace(ws).Priority)
}
