package workspacebinding

import (
	"context"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"

	"github.com/gpuspace/gpuspace/scheduler-plugin/internal/state"
)

// EventsToRegister names the events that can make a pod this plugin held
// or rejected schedulable: a GPR of its workspace changing (provisioned),
// a GPR letting go of nodes it held, a node gaining the pod's workspace
// binding or losing a binding or taint that kept the pod off, and the pod
// gaining tolerations.
func (pl *WorkspaceBinding) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: state.GPREventResource, ActionType: fwk.Add | fwk.Update | fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterGPRChange},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel | fwk.UpdateNodeTaint}, QueueingHintFn: pl.isSchedulableAfterNodeChange},
		{Event: fwk.ClusterEvent{Resource: fwk.TargetPod, ActionType: fwk.UpdatePodToleration}, QueueingHintFn: pl.isSchedulableAfterPodTolerationChange},
	}, nil
}

// isSchedulableAfterGPRChange queues a held pod when its workspace's GPR
// change releases it. The scheduler watches GPRs with its own informer, so
// the event may arrive here before the plugin's informer delivers it: the
// index is updated from the event first, or PreEnqueue would hold the pod
// again on a stale view and nothing would wake it.
func (pl *WorkspaceBinding) isSchedulableAfterGPRChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	var (
		g  state.GPR
		ok bool
	)
	if newObj != nil {
		g, ok = pl.state.OnGPR(newObj)
	} else {
		g, ok = pl.state.OnGPRDelete(oldObj)
	}
	if !ok {
		return fwk.Queue, fmt.Errorf("%s: unexpected GPR event object %T", Name, newObj)
	}
	c := pl.classify(pod)
	if c.exempt {
		return fwk.QueueSkip, nil
	}
	if !c.gpu || c.workspace != g.Workspace {
		// Another workspace's pod, a pod of none, or a CPU pod: the GPR
		// matters to it only by the nodes it held, which Filter kept the
		// pod off; once it lets one go (completed, deleted, shrunk), the
		// pod may fit there.
		if releasesNodes(oldObj, g, newObj == nil) {
			logger.V(5).Info("GPR change frees nodes", "pod", klog.KObj(pod), "gpr", g.Name)
			return fwk.Queue, nil
		}
		return fwk.QueueSkip, nil
	}
	if msg := pl.holdMessage(c); msg != "" {
		// Still held, but what it waits for (or when) may have moved.
		if pl.conditions != nil {
			pl.conditions.request(pod, msg)
		}
		logger.V(5).Info("GPR change does not release the pod", "pod", klog.KObj(pod), "gpr", g.Name)
		return fwk.QueueSkip, nil
	}
	logger.V(5).Info("GPR change releases the pod", "pod", klog.KObj(pod), "gpr", g.Name)
	return fwk.Queue, nil
}

// releasesNodes reports whether a GPR event lets go of a node the GPR
// held by its status: g is the GPR after the event (before it, when
// deleted).
func releasesNodes(oldObj any, g state.GPR, deleted bool) bool {
	if deleted {
		return len(g.Nodes) > 0
	}
	if oldObj == nil {
		return false
	}
	old, err := state.ToGPR(oldObj)
	if err != nil {
		return true
	}
	for _, n := range old.Nodes {
		if !slices.Contains(g.Nodes, n) {
			return true
		}
	}
	return false
}

// isSchedulableAfterNodeChange queues the pod when the node now admits it
// and did not before (a node labelled for its workspace, a label or taint
// removed).
func (pl *WorkspaceBinding) isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldNode, newNode, err := util.As[*v1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	c := pl.classify(pod)
	if pl.holdMessage(c) != "" {
		return fwk.QueueSkip, nil
	}
	ctx := klog.NewContext(context.Background(), logger)
	if pl.check(ctx, &c, pod, newNode) != "" {
		return fwk.QueueSkip, nil
	}
	if oldNode != nil && pl.check(ctx, &c, pod, oldNode) == "" {
		return fwk.QueueSkip, nil
	}
	logger.V(5).Info("Node now admits the pod", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
	return fwk.Queue, nil
}

// isSchedulableAfterPodTolerationChange queues the pod when it gained
// tolerations: it may now pass a taint that kept it off.
func (pl *WorkspaceBinding) isSchedulableAfterPodTolerationChange(_ klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	_, modified, err := util.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if modified.UID != pod.UID {
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}
