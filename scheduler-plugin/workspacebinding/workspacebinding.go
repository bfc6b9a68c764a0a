// Package workspacebinding is the WorkspaceBinding scheduler plugin: a
// workspace's GPU pods run only on the nodes its provisioned
// GPUProvisionRequest holds, nobody else's pods land there, and a
// workspace's GPU pods wait in the queue until its GPR is provisioned.
//
// Which node takes which pod is domain.NodeBinding's rule, decided from the
// GPRs' status (status.nodes, the source of truth) as well as from the node
// label gpuspace.io/workspace, so exclusivity never waits for a live
// controller: a node a provisioned GPR names takes only its workspace's
// pods before it is labelled, and a node whose GPR completed takes no GPU
// pod of that workspace while its stale label lingers.
//
// The plugin also does the taint check of the in-tree TaintToleration
// Filter, with one difference: the workspace taint
// (gpuspace.io/workspace=<ws>:NoSchedule) is tolerated by the workspace's
// own pods and by exempt pods. That is how those pods pass the taint without
// carrying a toleration, so a profile enabling WorkspaceBinding must
// disable TaintToleration's Filter (its Score stays).
package workspacebinding

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	resourcelisters "k8s.io/client-go/listers/resource/v1"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/features"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/draclaims"
	configv1 "github.com/gpuspace/gpuspace/scheduler-plugin/apis/config/v1"
	"github.com/gpuspace/gpuspace/scheduler-plugin/internal/state"
)

// Name is the plugin's name in the registry and in configurations.
const Name = "WorkspaceBinding"

// stateKey is where PreFilter leaves the pod's classification for Filter.
const stateKey fwk.StateKey = "PreFilter" + Name

// signerKey names the plugin's signature fragment: the namespace (which
// decides the workspace and exemption) and the pod facts Filter reads.
const signerKey = "gpuspace.io/WorkspaceBinding"

// Filter rejection reasons.
const (
	// ErrReasonBoundElsewhere: the node is bound to another workspace, or
	// to one while the pod belongs to none.
	ErrReasonBoundElsewhere = "node(s) bound to another workspace"
	// ErrReasonNotBound: a workspace's GPU pod on a node no provisioned
	// GPR of its workspace holds (unbound, or released with its label
	// still on).
	ErrReasonNotBound = "node(s) not held by a provisioned GPR of the pod's workspace"
	// ErrReasonTaint mirrors TaintToleration's reason.
	ErrReasonTaint = "node(s) had untolerated taint(s)"
)

// WorkspaceBinding is the plugin.
type WorkspaceBinding struct {
	handle fwk.Handle
	state  *state.Shared
	exempt map[string]struct{}
	// gpu is what makes a pod a GPU pod (args gpuResourceNames and
	// gpuDeviceClasses); claims and claimTemplates read its DRA claims.
	gpu            domain.GPUPodRule
	claims         resourcelisters.ResourceClaimLister
	claimTemplates resourcelisters.ResourceClaimTemplateLister
	conditions     *conditionWriter
	// cmpOps mirrors the TaintTolerationComparisonOperators gate the
	// in-tree TaintToleration plugin honours, as this plugin replaces its
	// Filter.
	cmpOps bool
}

var (
	_ fwk.PreEnqueuePlugin  = &WorkspaceBinding{}
	_ fwk.PreFilterPlugin   = &WorkspaceBinding{}
	_ fwk.FilterPlugin      = &WorkspaceBinding{}
	_ fwk.SignPlugin        = &WorkspaceBinding{}
	_ fwk.EnqueueExtensions = &WorkspaceBinding{}
)

// New builds the plugin from its args (WorkspaceBindingArgs, optional).
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

func newPlugin(ctx context.Context, obj runtime.Object, h fwk.Handle, newClient state.DynamicClientFunc) (*WorkspaceBinding, error) {
	args, err := configv1.DecodeWorkspaceBindingArgs(obj)
	if err != nil {
		return nil, err
	}
	s, err := state.For(ctx, h, newClient)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	pl := &WorkspaceBinding{
		handle: h,
		state:  s,
		exempt: make(map[string]struct{}, len(args.ExemptNamespaces)),
		cmpOps: utilfeature.DefaultFeatureGate.Enabled(features.TaintTolerationComparisonOperators),
	}
	for _, ns := range args.ExemptNamespaces {
		pl.exempt[ns] = struct{}{}
	}
	for _, n := range args.GPUResourceNames {
		pl.gpu.ResourceNames = append(pl.gpu.ResourceNames, v1.ResourceName(n))
	}
	pl.gpu.DeviceClasses = append([]string{}, args.GPUDeviceClasses...)
	if f := h.SharedInformerFactory(); f != nil {
		// The scheduler's own informers: its DRA plugin watches claims
		// already; templates are read for a claim not made yet.
		pl.claims = f.Resource().V1().ResourceClaims().Lister()
		pl.claimTemplates = f.Resource().V1().ResourceClaimTemplates().Lister()
	}
	if *args.UpdatePodCondition && h.ClientSet() != nil {
		pl.conditions = newConditionWriter(h.ClientSet())
		go pl.conditions.run(ctx)
	}
	return pl, nil
}

// Name returns the plugin's name.
func (pl *WorkspaceBinding) Name() string { return Name }

// podClass is what the plugin decides on, computed once per scheduling
// cycle in PreFilter. It is immutable, so Clone shares it.
type podClass struct {
	// exempt: system namespace, DaemonSet or mirror pod.
	exempt    bool
	workspace string
	gpu       bool
}

// Clone implements fwk.StateData.
func (c *podClass) Clone() fwk.StateData { return c }

func (pl *WorkspaceBinding) classify(pod *v1.Pod) podClass {
	if _, ok := pl.exempt[pod.Namespace]; ok || state.IsDaemonSetPod(pod) || state.IsMirrorPod(pod) {
		return podClass{exempt: true}
	}
	return podClass{
		workspace: pl.state.NamespaceWorkspace(pod.Namespace),
		gpu:       pl.usesGPUs(pod),
	}
}

// usesGPUs reports whether pod is a GPU pod (domain.PodUsesGPUs), by its
// resources or its DRA claims. A claim that cannot be read yet counts for
// nothing: the DRA plugin holds such a pod itself until the claim exists,
// and the claim's arrival runs PreEnqueue again.
func (pl *WorkspaceBinding) usesGPUs(pod *v1.Pod) bool {
	var claims []*resourcev1.ResourceClaimSpec
	if pl.claims != nil {
		claims, _ = draclaims.FromListers(pl.claims, pl.claimTemplates, pod)
	}
	return domain.PodUsesGPUs(pod, pl.gpu, claims)
}

// holdMessage says why a pod of class c must wait, or "" when it need not:
// a workspace's GPU pod waits until the workspace has a provisioned GPR and
// at least one node bound to it.
func (pl *WorkspaceBinding) holdMessage(c podClass) string {
	if c.exempt || c.workspace == "" || !c.gpu {
		return ""
	}
	sum := pl.state.GPRs.Workspace(c.workspace)
	if p := sum.Provisioned; p.Name != "" {
		if sum.Nodes.Len() > 0 {
			return ""
		}
		return fmt.Sprintf("GPUProvisionRequest %s of workspace %s is provisioned; waiting for its nodes to be bound", p.Name, c.workspace)
	}
	if n := sum.Next; n.Name != "" {
		start := startEstimate(n)
		if n.Template != "" {
			return fmt.Sprintf("waiting for GPUProvisionRequest %s of workspace %s (%s, priority %d, made by auto-GPR from template %s); %s", n.Name, c.workspace, n.Phase, n.Priority, n.Template, start)
		}
		return fmt.Sprintf("waiting for GPUProvisionRequest %s of workspace %s (%s, priority %d); %s", n.Name, c.workspace, n.Phase, n.Priority, start)
	}
	return fmt.Sprintf("workspace %s has no queued or provisioned GPUProvisionRequest%s", c.workspace, NoGPRHint)
}

// startEstimate words a queued GPR's two estimates for a hold message:
// the likely start (the EGS estimatedStartTime) and the latest start.
func startEstimate(g state.GPR) string {
	switch {
	case g.EstimatedStart.IsZero():
		return "start not estimated yet"
	case g.LatestStart.IsZero() || !g.LatestStart.After(g.EstimatedStart):
		return "estimated start: " + g.EstimatedStart.UTC().Format(time.RFC3339)
	}
	return "likely start: " + g.EstimatedStart.UTC().Format(time.RFC3339) +
		", at the latest: " + g.LatestStart.UTC().Format(time.RFC3339)
}

// NoGPRHint ends the hold message of a pod whose workspace has no GPR: why
// a workspace that had one may have none now.
const NoGPRHint = " (a GPR's nodes are released when its exitDuration ends, on early release, " +
	"or once its GPUs stay idle for its idleTimeOutDuration with enforceIdleTimeOut): create a GPR to run GPU pods"

// PreEnqueue holds a workspace's GPU pods until the workspace's GPR is
// provisioned and names its nodes. The status message names the GPR
// the pod waits for and its estimated start; it is also written, off this
// path, to the pod's PodScheduled condition.
func (pl *WorkspaceBinding) PreEnqueue(_ context.Context, pod *v1.Pod) *fwk.Status {
	msg := pl.holdMessage(pl.classify(pod))
	if msg == "" {
		return nil
	}
	if pl.conditions != nil {
		pl.conditions.request(pod, msg)
	}
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg)
}

// PreFilter classifies the pod for Filter and, for a workspace's GPU pod,
// narrows the candidate nodes to those its workspace's provisioned GPRs
// hold, so the other plugins' filters run on a handful of nodes instead of
// the cluster.
func (pl *WorkspaceBinding) PreFilter(_ context.Context, cs fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	c := pl.classify(pod)
	cs.Write(stateKey, &c)
	if c.exempt || c.workspace == "" || !c.gpu {
		return nil, nil
	}
	nodes := pl.state.GPRs.Workspace(c.workspace).Nodes
	if nodes.Len() == 0 {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("no node is bound to workspace %s", c.workspace))
	}
	return &fwk.PreFilterResult{NodeNames: nodes.Clone()}, nil
}

// PreFilterExtensions returns nil: other pods on a node do not change the
// plugin's decision.
func (pl *WorkspaceBinding) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Filter admits the pod on the node if the node's binding allows it
// (domain.NodeBinding.Admits) and the pod tolerates the node's
// NoSchedule/NoExecute taints (the workspace taint counting as tolerated by
// the workspace's own pods, the node holder's and exempt pods). It reads
// the node's labels and taints and one map entry of the GPR index: O(1) in
// the cluster's size and allocation-free when the node fits.
func (pl *WorkspaceBinding) Filter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	d, err := cs.Read(stateKey)
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("%s: reading %q from cycle state: %w", Name, stateKey, err))
	}
	c, ok := d.(*podClass)
	if !ok {
		return fwk.AsStatus(fmt.Errorf("%s: unexpected cycle state %T", Name, d))
	}
	node := nodeInfo.Node()
	if node == nil {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "node not found")
	}
	if reason := pl.check(ctx, c, pod, node); reason != "" {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reason)
	}
	return nil
}

// check returns why a pod of class c may not run on node, or "".
func (pl *WorkspaceBinding) check(ctx context.Context, c *podClass, pod *v1.Pod, node *v1.Node) string {
	var b domain.NodeBinding
	if !c.exempt {
		b = pl.state.Binding(node)
		switch b.Admits(c.workspace, c.gpu) {
		case domain.RefusedBoundElsewhere:
			return ErrReasonBoundElsewhere
		case domain.RefusedNotHeld:
			return ErrReasonNotBound
		}
	}
	taints := node.Spec.Taints
	for i := range taints {
		t := &taints[i]
		if t.Effect != v1.TaintEffectNoSchedule && t.Effect != v1.TaintEffectNoExecute {
			continue
		}
		if t.Key == gpuspacev1alpha1.TaintWorkspace && (c.exempt || b.ToleratesWorkspaceTaint(c.workspace, t.Value)) {
			continue
		}
		if !v1helper.TolerationsTolerateTaint(klog.FromContext(ctx), pod.Spec.Tolerations, t, pl.cmpOps) {
			return ErrReasonTaint
		}
	}
	return ""
}

// podSign is the plugin's signature fragment value.
type podSign struct {
	Namespace string `json:"ns"`
	Exempt    bool   `json:"exempt,omitempty"`
	GPU       bool   `json:"gpu,omitempty"`
}

// SignPod lets the scheduler batch pods that this plugin treats alike: the
// decision depends on the namespace (workspace, exemption), whether the pod
// is a GPU pod or exempt by ownership, and its tolerations (shared with
// TaintToleration's fragment of the same key).
func (pl *WorkspaceBinding) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	exempt := state.IsDaemonSetPod(pod) || state.IsMirrorPod(pod)
	return []fwk.SignFragment{
		{Key: signerKey, Value: podSign{Namespace: pod.Namespace, Exempt: exempt, GPU: pl.usesGPUs(pod)}},
		{Key: fwk.TolerationsSignerName, Value: fwk.TolerationsSigner(pod)},
	}, nil
}
