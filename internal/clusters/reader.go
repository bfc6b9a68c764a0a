package clusters

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Reader is hub, an uncached reader of the local cluster, whose Node reads
// span every worker: a List of Nodes appends each Ready worker's nodes
// (live, labelled with their cluster), a Get of a Node the hub does not
// have looks in the workers. Code that confirms a decision on a live node
// list (the GPR controller before failing a GPR as unsatisfiable, or
// before an idle release) sees the same clusters as its plan. Everything
// else is the hub's.
func (r *Registry) Reader(hub client.Reader) client.Reader { return &reader{Reader: hub, reg: r} }

type reader struct {
	client.Reader
	reg *Registry
}

func (rd *reader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := rd.Reader.List(ctx, list, opts...); err != nil {
		return err
	}
	nodes, ok := list.(*corev1.NodeList)
	if !ok {
		return nil
	}
	for _, w := range rd.reg.snapshot() {
		synced, st := w.status()
		if !st.ready {
			// Its last known nodes, as the plan has them.
			var cached corev1.NodeList
			if synced && w.cl.GetCache().List(ctx, &cached, opts...) == nil {
				for i := range cached.Items {
					nodes.Items = append(nodes.Items, *workerNode(&cached.Items[i], w.name, st))
				}
			}
			continue
		}
		var live corev1.NodeList
		if err := w.cl.GetAPIReader().List(ctx, &live, opts...); err != nil {
			return err
		}
		for i := range live.Items {
			nodes.Items = append(nodes.Items, *workerNode(&live.Items[i], w.name, st))
		}
	}
	return nil
}

func (rd *reader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := rd.Reader.Get(ctx, key, obj, opts...)
	n, isNode := obj.(*corev1.Node)
	if !isNode || !apierrors.IsNotFound(err) {
		return err
	}
	for _, w := range rd.reg.snapshot() {
		if !rd.reg.Ready(w.name) {
			continue
		}
		if werr := w.cl.GetAPIReader().Get(ctx, key, n, opts...); werr == nil {
			_, st := w.status()
			workerNode(n, w.name, st)
			return nil
		}
	}
	return err
}
