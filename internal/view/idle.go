package view

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/duration"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

// What reads show of GPU use: each node's published utilisation and idle
// signal (internal/util/idlesignal), and per provisioned GPR the same over its
// nodes with when idle release would take it (internal/domain). EGS calls
// the idle time timeSinceNoUtilization; the fields are extra keys that EGS
// clients ignore (the SDK's parsers take **kwargs there).

// IdleView is what the inventory shows of a node's GPU use.
type IdleView struct {
	GPUUtilization         *int   `json:"gpuUtilization" doc:"Mean GPU utilisation of the node in percent, as its device plugin last published it (coarse: up to minutes old); null when it publishes none"`
	TimeSinceNoUtilization string `json:"timeSinceNoUtilization" doc:"How long all of the node's GPUs have been idle (Go duration, e.g. 0h12m0s); empty while any is busy or the node does not publish idleness"`
	IdleSignal             bool   `json:"idleSignal" doc:"Whether the node publishes idleness (gpuspace.io/gpus-idle-since). A node that does not (no gpuspace device plugin, or an old one) is never released for being idle"`
}

// NodeIdle is the idle view of a node at now.
func NodeIdle(n *corev1.Node, now time.Time) IdleView {
	var v IdleView
	if u, ok := idlesignal.ReadUtilization(n); ok {
		v.GPUUtilization = &u
	}
	since, published := idlesignal.Read(n)
	v.IdleSignal = published
	if published && !since.IsZero() {
		v.TimeSinceNoUtilization = duration.Format(max(now.Sub(since), 0).Truncate(time.Second))
	}
	return v
}

// GPRIdleView is what a GPR's status shows of its GPUs' use.
type GPRIdleView struct {
	GPUUtilization         *int   `json:"gpuUtilization" doc:"Provisioned: mean GPU utilisation of its nodes in percent, as their device plugins last published it (coarse); null otherwise or when a node publishes none"`
	TimeSinceNoUtilization string `json:"timeSinceNoUtilization" doc:"Provisioned: how long all of its nodes' GPUs have been idle, counted from no earlier than its start (Go duration, e.g. 0h12m0s); empty while any is busy or does not publish idleness"`
	IdleReleaseAt          string `json:"idleReleaseAt" doc:"Provisioned with idle enforcement on (enforceIdleTimeOut, or its workspace policy's) and idle now: when it is released with reason Idle if its GPUs stay idle (RFC 3339); empty otherwise"`
}

// IdleReader renders GPRs' idle views, reading the nodes once, and only
// for the first provisioned GPR (nothing else needs them). Make one per
// answer: it keeps the nodes it read.
type IdleReader struct {
	v     *View
	nodes map[string]*corev1.Node
}

// IdleReader makes an IdleReader for one answer.
func (v *View) IdleReader() *IdleReader { return &IdleReader{v: v} }

// GPR is the idle view of a GPR at now.
func (r *IdleReader) GPR(ctx context.Context, g *v1alpha1.GPUProvisionRequest, now time.Time) (GPRIdleView, error) {
	var v GPRIdleView
	if !domain.IsProvisioned(g) {
		return v, nil
	}
	if r.nodes == nil {
		nodes, err := r.v.Nodes(ctx)
		if err != nil {
			return v, err
		}
		r.nodes = make(map[string]*corev1.Node, len(nodes))
		for _, n := range nodes {
			r.nodes[n.GPUNode.Name] = n.Node
		}
	}
	nodes := r.nodes
	if mean, ok := domain.Utilization(g, nodes); ok {
		v.GPUUtilization = &mean
	}
	if _, idle := domain.IdleSince(g, nodes); !idle {
		return v, nil
	}
	v.TimeSinceNoUtilization = duration.Format(domain.IdleFor(g, nodes, now).Truncate(time.Second))
	if _, ok := domain.IdleTimeout(g); !ok {
		return v, nil
	}
	pol, err := r.v.Policy(ctx, g.Spec.Workspace)
	if err != nil {
		return v, err
	}
	if _, at := domain.IdleRelease(g, pol, nodes, now); !at.IsZero() {
		v.IdleReleaseAt = at.UTC().Format(time.RFC3339)
	}
	return v, nil
}
