package gpr

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/metrics"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/draclaims"
)

// bindNodes makes node labels and taints follow the provisioned GPRs'
// status (domain.Holders), right after the starts are written, node by
// node concurrently (inParallel: each node's patch and eviction are its
// own); failures are recorded in node order. A node claimed by two GPRs
// is left as it is and reported on both GPRs and on the node (nodeHealth,
// domain.ClaimedTwice); it is a state, not a failure of the pass, so it
// costs no retries and delays nothing else.
func (r *Reconciler) bindNodes(ctx context.Context, p *pass) error {
	holders, conflicts := domain.Holders(p.gprs)
	p.conflicts = conflicts
	conflicted := map[string]bool{}
	for _, c := range conflicts {
		conflicted[c.Node] = true
	}
	sweep := !r.swept
	var nodes []*corev1.Node
	for _, n := range p.nodes {
		if !conflicted[n.Name] && r.bindingOwed(n, holders[n.Name], sweep) {
			nodes = append(nodes, n)
		}
	}
	errs := inParallel(len(nodes), func(i int) error {
		return r.reconcileNode(ctx, nodes[i], holders[nodes[i].Name], sweep)
	})
	for _, err := range errs {
		if err != nil {
			p.fail("bind", err)
		}
	}
	r.swept = true
	return nil
}

// bindingOwed reports whether reconcileNode has anything to do for node n
// held by holder (nil: none): its binding differs, an eviction is owed,
// or a sweep checks a bound node. The many nodes already as they should
// be cost nothing.
func (r *Reconciler) bindingOwed(n *corev1.Node, holder *v1alpha1.GPUProvisionRequest, sweep bool) bool {
	if !bindingMatches(n, holder) {
		return true
	}
	_, owed := r.evictions.get(n.Name)
	return owed || (sweep && holder != nil)
}

// bindingMatches reports whether node n's binding labels and taint are
// those of holder (nil: none).
func bindingMatches(n *corev1.Node, holder *v1alpha1.GPUProvisionRequest) bool {
	var ws, id string
	if holder != nil {
		ws, id = holder.Spec.Workspace, holder.Name
	}
	_, taintsChanged := withBinding(n.Spec.Taints, ws)
	return labelIs(n, v1alpha1.LabelWorkspace, ws) && labelIs(n, v1alpha1.LabelGPR, id) && !taintsChanged
}

// eviction is what is owed to a node that changed hands: the pods of
// workspace was, and every other workspace's GPU pods once it is now's.
type eviction struct{ was, now string }

// evictOwed retries the eviction a node is owed (a failed Delete, an
// unreadable namespace), or, on a sweep, checks a bound node for GPU pods
// of other workspaces. It runs when the node's binding already matches:
// bindings converge on status, not only when a node changes hands.
func (r *Reconciler) evictOwed(ctx context.Context, n *corev1.Node, holder *v1alpha1.GPUProvisionRequest, sweep bool) error {
	var ws string
	if holder != nil {
		ws = holder.Spec.Workspace
	}
	owed, ok := r.evictions.get(n.Name)
	switch {
	case ok && owed.now == ws:
		// Retry what the last change of hands left undone.
	case ok || (sweep && ws != ""):
		owed = eviction{now: ws} // the node moved on, or a sweep: other workspaces' GPU pods
	default:
		return nil
	}
	c, reader, reachable := r.nodeClients(n)
	if !reachable {
		return nil
	}
	return r.evictTracked(ctx, c, reader, n.Name, holder, owed)
}

// evictTracked evicts what owed says must leave node, and remembers it
// until that succeeds. Each stray GPU pod deleted (one of another
// workspace, or of none, on a node bound to holder's workspace) gets an
// Event, and so does holder; the first failure for a node is an Event on
// holder too (the retries are in the pass's errors and metrics).
func (r *Reconciler) evictTracked(ctx context.Context, c client.Client, reader client.Reader, node string, holder *v1alpha1.GPUProvisionRequest, owed eviction) error {
	strays, err := evict(ctx, c, reader, node, owed.was, owed.now, r.gpuResources)
	r.strayEvents(c, node, holder, strays)
	if err != nil {
		if _, again := r.evictions.get(node); !again && holder != nil {
			r.event(holder, corev1.EventTypeWarning, "EvictionFailed", "Evict",
				"pods that must leave node %s could not all be deleted, retrying: %v", node, err)
		}
		r.evictions.owe(node, owed)
		return err
	}
	r.evictions.paid(node)
	return nil
}

// owedEvictions are the evictions nodes are owed, by node: retried on
// every pass until they succeed. bindNodes reconciles nodes concurrently,
// so the map has a lock of its own.
type owedEvictions struct {
	mu sync.Mutex
	m  map[string]eviction
}

// get is the eviction node is owed, if any.
func (o *owedEvictions) get(node string) (eviction, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.m[node]
	return e, ok
}

// owe remembers that node is owed eviction owed, retried on every pass.
func (o *owedEvictions) owe(node string, owed eviction) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]eviction{}
	}
	o.m[node] = owed
}

// paid forgets node's eviction: it succeeded.
func (o *owedEvictions) paid(node string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, node)
}

// strayEvents records the eviction of stray GPU pods from node, bound to
// holder's workspace: on each pod (in the controller's own cluster only:
// an Event is written beside the object it is about) and on holder.
func (r *Reconciler) strayEvents(c client.Client, node string, holder *v1alpha1.GPUProvisionRequest, strays []*corev1.Pod) {
	if len(strays) == 0 || r.recorder == nil || holder == nil {
		return
	}
	names := make([]string, len(strays))
	for i, pod := range strays {
		names[i] = pod.Namespace + "/" + pod.Name
		if c == r.client {
			r.recorder.Eventf(pod, holder, corev1.EventTypeWarning, "StrayGPUPodEvicted", "Evict",
				"deleted: node %s is bound to workspace %s (GPR %s), where only its GPU pods may run", node, holder.Spec.Workspace, holder.Name)
		}
	}
	r.event(holder, corev1.EventTypeWarning, "StrayGPUPodEvicted", "Evict",
		"deleted GPU pods of other workspaces from node %s: %s", node, joinNames(names))
}

// reconcileNode makes a node's binding labels and taint match its holder
// (nil: none). When the node changes hands, the pods that must leave it
// are deleted gracefully (evict); an eviction that failed is retried on
// every pass until it succeeds, and a sweep checks a bound node even
// when nothing changed (evictOwed).
func (r *Reconciler) reconcileNode(ctx context.Context, n *corev1.Node, holder *v1alpha1.GPUProvisionRequest, sweep bool) error {
	curWS, _, _ := binding(n)
	var ws, id string
	if holder != nil {
		ws, id = holder.Spec.Workspace, holder.Name
	}
	if bindingMatches(n, holder) {
		return r.evictOwed(ctx, n, holder, sweep)
	}
	taints, _ := withBinding(n.Spec.Taints, ws)
	c, reader, ok := r.nodeClients(n)
	if !ok {
		// Its cluster is unreachable: the binding is reconciled from
		// status when it is back.
		return nil
	}
	orig := n.DeepCopy()
	nn := n.DeepCopy()
	if nn.Labels == nil {
		nn.Labels = map[string]string{}
	}
	if ws == "" {
		delete(nn.Labels, v1alpha1.LabelWorkspace)
		delete(nn.Labels, v1alpha1.LabelGPR)
	} else {
		nn.Labels[v1alpha1.LabelWorkspace] = ws
		nn.Labels[v1alpha1.LabelGPR] = id
	}
	nn.Spec.Taints = taints
	patch := client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})
	if err := c.Patch(ctx, nn, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		if curWS != ws {
			// The Patch may have been applied with its answer lost: then
			// the next pass sees the labels match and must still owe
			// the eviction.
			r.evictions.owe(n.Name, eviction{was: curWS, now: ws})
		}
		return fmt.Errorf("bind node %s to %q: %w", n.Name, ws, err)
	}
	logr.FromContextOrDiscard(ctx).Info("node binding", "node", n.Name, "workspace", ws, "gpr", id, "was", curWS)
	if curWS != ws {
		return r.evictTracked(ctx, c, reader, n.Name, holder, eviction{was: curWS, now: ws})
	}
	return nil
}

// labelIs reports whether node n has label k set to v, or, for v empty,
// does not have it.
func labelIs(n *corev1.Node, k, v string) bool {
	cur, ok := n.Labels[k]
	if v == "" {
		return !ok
	}
	return ok && cur == v
}

// evict deletes, gracefully, the pods that must leave a node that moved
// from workspace was to workspace now (either may be ""): every pod of
// was, and, when the node now belongs to a workspace, every GPU pod of
// anyone else — a pod left behind by a workspace deleted meanwhile (its
// namespaces released), or one that landed while the node was free. A
// pod's workspace is its namespace's gpuspace.io/workspace label, in the
// node's cluster (c, and reader uncached). Pods and namespaces are read
// through reader: a worker's client caches Nodes only, and a cached Get
// of a Namespace there would start an informer the worker credential
// cannot watch and block the pass. strays are the GPU pods it deleted of
// workspaces other than now and was (or of none); a namespace it cannot read
// leaves that namespace's pods in place and is an error, retried by the
// caller.
func evict(ctx context.Context, c client.Client, reader client.Reader, node, was, now string, gpuResources []corev1.ResourceName) (strays []*corev1.Pod, err error) {
	var pods corev1.PodList
	if err := reader.List(ctx, &pods, client.MatchingFieldsSelector{
		Selector: fields.OneTermEqualSelector("spec.nodeName", node),
	}); err != nil {
		return nil, fmt.Errorf("list pods on node %s: %w", node, err)
	}
	nsWS := map[string]string{}
	var errs []error
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		owner, ok := nsWS[p.Namespace]
		if !ok {
			var ns corev1.Namespace
			err := reader.Get(ctx, client.ObjectKey{Name: p.Namespace}, &ns)
			if err != nil && !apierrors.IsNotFound(err) {
				// Unknown owner: never evict on a guess (the pass
				// reports the error).
				errs = append(errs, fmt.Errorf("read namespace %s of pod %s on node %s: %w", p.Namespace, p.Name, node, err))
				continue
			}
			owner = ns.Labels[v1alpha1.LabelWorkspace]
			nsWS[p.Namespace] = owner
		}
		leaves := was != "" && owner == was
		if !leaves && now != "" && owner != now {
			// A GPU pod by its resources or its DRA claims.
			claims, err := draclaims.FromReader(ctx, reader, p)
			if err != nil {
				// Unknown claims: never evict on a guess.
				errs = append(errs, fmt.Errorf("read resource claims of pod %s/%s on node %s: %w", p.Namespace, p.Name, node, err))
				continue
			}
			leaves = domain.PodUsesGPUs(p, domain.GPUPodRule{ResourceNames: gpuResources}, claims)
		}
		if !leaves {
			continue
		}
		err := c.Delete(ctx, p, client.Preconditions{UID: &p.UID})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("evict pod %s/%s from node %s: %w", p.Namespace, p.Name, node, err))
			continue
		}
		if now != "" && owner != now && (was == "" || owner != was) { // the previous holder's pods leaving is a release, not a stray
			metrics.StrayPodsEvicted.Inc()
			strays = append(strays, p)
		}
		logr.FromContextOrDiscard(ctx).Info("evicted pod", "pod", p.Namespace+"/"+p.Name, "node", node, "workspace", owner, "nodeWorkspace", now)
	}
	return strays, errors.Join(errs...)
}

// binding returns the workspace and GPR a node's labels name, and whether
// it has gpuspace's taint; the workspace falls back to the taint's value.
func binding(n *corev1.Node) (ws, gpr string, tainted bool) {
	ws, gpr = n.Labels[v1alpha1.LabelWorkspace], n.Labels[v1alpha1.LabelGPR]
	for _, t := range n.Spec.Taints {
		if t.Key == v1alpha1.TaintWorkspace {
			tainted = true
			if ws == "" {
				ws = t.Value
			}
		}
	}
	return ws, gpr, tainted
}

// bindingTaint is the taint on a node bound to ws.
func bindingTaint(ws string) corev1.Taint {
	return corev1.Taint{Key: v1alpha1.TaintWorkspace, Value: ws, Effect: corev1.TaintEffectNoSchedule}
}

// withBinding returns n's taints with gpuspace's taint set for ws (or
// removed when ws is empty), and whether they changed.
func withBinding(taints []corev1.Taint, ws string) ([]corev1.Taint, bool) {
	out := make([]corev1.Taint, 0, len(taints)+1)
	found := false
	changed := false
	for _, t := range taints {
		if t.Key != v1alpha1.TaintWorkspace {
			out = append(out, t)
			continue
		}
		if ws == "" || found || t != bindingTaint(ws) {
			changed = true
			continue
		}
		found = true
		out = append(out, t)
	}
	if ws != "" && !found {
		out = append(out, bindingTaint(ws))
		changed = true
	}
	return out, changed
}
