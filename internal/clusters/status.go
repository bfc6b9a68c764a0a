package clusters

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// storedState is the Ready condition a Cluster's status holds.
func storedState(c *v1alpha1.Cluster) state {
	cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReady)
	if cond == nil {
		return state{}
	}
	return state{
		ready: cond.Status == metav1.ConditionTrue, reason: cond.Reason, message: cond.Message,
		version: c.Status.Version, at: cond.LastTransitionTime.Time,
	}
}

// writeStatus writes a worker's Cluster status when its Ready condition
// differs from the one written, or StatusInterval has passed since the
// last write (heartbeat time, version, nodes and capacity ride along).
// Each change of Ready gets an Event. Only the leader writes.
func (r *Registry) writeStatus(ctx context.Context, w *worker, st state) {
	if !r.isLeader() {
		return
	}
	synced, _ := w.status()
	var capa *capacity
	if synced {
		var nodes corev1.NodeList
		if err := w.cl.GetCache().List(ctx, &nodes); err == nil {
			capa = &capacity{}
			capa.nodes, capa.gpuNodes, capa.byShape = Capacity(nodes.Items, w.name)
		}
	}
	w.mu.Lock()
	changed := w.written.ready != st.ready || w.written.reason != st.reason || w.written.version != st.version
	// Nodes or GPUs that came or went are written at once too (rare).
	capChanged := capa != nil && (w.writtenCap == nil || !capa.equal(w.writtenCap))
	due := st.ready && st.at.Sub(w.wroteAt) >= r.opts.StatusInterval
	w.mu.Unlock()
	if !changed && !due && !capChanged {
		return
	}
	var c v1alpha1.Cluster
	if err := r.hub.Get(ctx, client.ObjectKey{Name: w.name}, &c); err != nil {
		return // gone: the controller stops the worker
	}
	nc := c.DeepCopy()
	setReady(nc, st)
	nc.Status.Server = w.server
	if st.version != "" {
		nc.Status.Version = st.version
	}
	if st.ready {
		hb := metav1.NewTime(st.at.Truncate(time.Second))
		nc.Status.LastHeartbeatTime = &hb
	}
	if capa != nil {
		nc.Status.Nodes, nc.Status.GPUNodes, nc.Status.Capacity = capa.nodes, capa.gpuNodes, capa.byShape
	}
	if err := r.hub.Status().Patch(ctx, nc, client.MergeFrom(&c)); err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "write cluster status", "cluster", w.name)
		return
	}
	w.mu.Lock()
	w.written, w.wroteAt = st, st.at
	if capa != nil {
		w.writtenCap = capa
	}
	w.mu.Unlock()
	if old := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReady); old == nil || (old.Status == metav1.ConditionTrue) != st.ready {
		r.readyEvent(nc, st)
	}
}

// capacity is what a Cluster's status says of its nodes.
type capacity struct {
	nodes, gpuNodes int32
	byShape         []v1alpha1.ShapeCapacity
}

func (c *capacity) equal(o *capacity) bool {
	return c.nodes == o.nodes && c.gpuNodes == o.gpuNodes && slices.Equal(c.byShape, o.byShape)
}

// setReady sets a Cluster's Ready condition from a heartbeat.
func setReady(c *v1alpha1.Cluster, st state) {
	status := metav1.ConditionFalse
	if st.ready {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ClusterReady, Status: status, Reason: st.reason, Message: truncate(st.message, 1024),
		ObservedGeneration: c.Generation,
	})
}

// readyEvent records the change of a Cluster's Ready condition.
func (r *Registry) readyEvent(c *v1alpha1.Cluster, st state) {
	if r.recorder == nil {
		return
	}
	typ, reason := corev1.EventTypeNormal, "ClusterReady"
	if !st.ready {
		typ, reason = corev1.EventTypeWarning, "ClusterNotReady"
	}
	r.recorder.Eventf(c, nil, typ, reason, "Heartbeat", "%s: %s", st.reason, truncate(st.message, 512))
}

// Capacity is the node count, GPU node count and GPU capacity by shape of
// a cluster's nodes, from domain.GPUFacts.
func Capacity(nodes []corev1.Node, cluster string) (all, gpuNodes int32, byShape []v1alpha1.ShapeCapacity) {
	m := map[string]*v1alpha1.ShapeCapacity{}
	for i := range nodes {
		all++
		f, ok := domain.GPUFacts(&nodes[i], cluster)
		if !ok {
			continue
		}
		gpuNodes++
		s := m[f.Shape]
		if s == nil {
			s = &v1alpha1.ShapeCapacity{Shape: f.Shape}
			m[f.Shape] = s
		}
		s.Nodes++
		s.GPUs += f.GPUs
		s.HealthyGPUs += min(f.HealthyGPUs, f.GPUs)
	}
	for _, s := range m {
		byShape = append(byShape, *s)
	}
	slices.SortFunc(byShape, func(a, b v1alpha1.ShapeCapacity) int { return strings.Compare(a.Shape, b.Shape) })
	return all, gpuNodes, byShape
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
