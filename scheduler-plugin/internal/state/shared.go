// Package state holds what the gpuspace scheduler plugins of one profile
// know about the cluster: which workspace each namespace belongs to, each
// workspace's GPRs, and which nodes each GPR holds by its status. All of
// it comes from informers; nothing here calls the API on a scheduling
// path. What a GPR or a node's binding means is the domain package's
// rule (internal/domain); this package only indexes.
package state

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	coreinformers "k8s.io/client-go/informers/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	gpuspacev1alpha1 "github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// GPRResource is the GPUProvisionRequest resource.
var GPRResource = gpuspacev1alpha1.SchemeGroupVersion.WithResource("gpuprovisionrequests")

// GPREventResource is how the scheduler names GPR events in
// EventsToRegister: <plural>.<version>.<group>. The scheduler watches it
// through its dynamic informer factory and runs our queueing hints.
var GPREventResource = fwk.EventResource(fmt.Sprintf("%s.%s.%s", GPRResource.Resource, GPRResource.Version, GPRResource.Group))

// SyncTimeout bounds how long plugin construction waits for the GPR
// informer: without the CRD the scheduler must fail loudly, not hold every
// GPU pod forever.
var SyncTimeout = 60 * time.Second

// Shared is the state of one scheduling profile, shared by its plugins.
type Shared struct {
	Namespaces corelisters.NamespaceLister
	GPRs       *GPRIndex

	gprSynced cache.InformerSynced
}

// DynamicClientFunc builds the dynamic client the GPR informer lists and
// watches with.
type DynamicClientFunc func() (dynamic.Interface, error)

// FromHandle builds a dynamic client from the handle's kubeconfig.
func FromHandle(h fwk.Handle) DynamicClientFunc {
	return func() (dynamic.Interface, error) {
		cfg := h.KubeConfig()
		if cfg == nil {
			return nil, fmt.Errorf("the framework handle has no kubeconfig")
		}
		c, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("dynamic client: %w", err)
		}
		return c, nil
	}
}

type entry struct {
	once sync.Once
	s    *Shared
	err  error
}

// profiles maps a framework handle to its Shared state, so that the plugins
// of one profile (WorkspaceBinding and GPRPriority) share informers and
// indexes.
var profiles sync.Map

// For returns the Shared state of h's profile, building it on first use:
// it starts GPR and namespace informers of its own and waits for them to
// sync. Nodes are read from the scheduler's snapshot, not indexed here.
// The state lives until ctx ends.
func For(ctx context.Context, h fwk.Handle, newClient DynamicClientFunc) (*Shared, error) {
	v, _ := profiles.LoadOrStore(h, &entry{})
	e := v.(*entry)
	e.once.Do(func() {
		e.s, e.err = build(ctx, h, newClient)
		go func() {
			<-ctx.Done()
			profiles.CompareAndDelete(h, e)
		}()
	})
	return e.s, e.err
}

func build(ctx context.Context, h fwk.Handle, newClient DynamicClientFunc) (*Shared, error) {
	logger := klog.FromContext(ctx)
	s := &Shared{GPRs: NewGPRIndex()}
	client, err := newClient()
	if err != nil {
		return nil, err
	}
	inf := dynamicinformer.NewFilteredDynamicInformer(client, GPRResource, "", 0, cache.Indexers{}, nil).Informer()
	// The registration's HasSynced, not the informer's: the index is fed by
	// the handler, which receives the initial list after the store has it.
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.OnGPR(obj) },
		UpdateFunc: func(_, obj any) { s.OnGPR(obj) },
		DeleteFunc: func(obj any) { s.OnGPRDelete(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("GPR event handler: %w", err)
	}
	// Namespaces get an informer of their own rather than the scheduler's
	// shared one: that one starts with the scheduler's pod informer, so
	// pods could enter the queue, and be sorted, before any namespace is
	// known; this one is synced before the scheduler starts.
	nsInf := coreinformers.NewNamespaceInformer(h.ClientSet(), 0, cache.Indexers{})
	s.Namespaces = corelisters.NewNamespaceLister(nsInf.GetIndexer())
	go inf.RunWithContext(ctx)
	go nsInf.RunWithContext(ctx)
	syncCtx, cancel := context.WithTimeout(ctx, SyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), reg.HasSynced, nsInf.HasSynced) {
		return nil, fmt.Errorf("GPUProvisionRequest and Namespace informers did not sync within %s (is the gpuspace.io CRD installed and readable?)", SyncTimeout)
	}
	s.gprSynced = reg.HasSynced
	logger.V(2).Info("gpuspace scheduler state ready")
	return s, nil
}

// Binding is node's binding: who holds it by GPR status, and its label.
func (s *Shared) Binding(node *v1.Node) domain.NodeBinding {
	return s.GPRs.Binding(node.Name, node.Labels[gpuspacev1alpha1.LabelWorkspace])
}

// OnGPR records a GPR add or update event, from the informer or a hint.
// It returns the GPR as recorded.
func (s *Shared) OnGPR(obj any) (GPR, bool) {
	// Queueing hints call this once per held pod and event: skip the
	// conversion when the index already holds this version.
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if rv := u.GetResourceVersion(); rv != "" {
			if have, ok := s.GPRs.Get(u.GetName()); ok && have.ResourceVersion == rv {
				return have, true
			}
		}
	}
	g, err := ToGPR(obj)
	if err != nil {
		return GPR{}, false
	}
	s.GPRs.Upsert(g)
	return g, true
}

// OnGPRDelete records a GPR deletion.
func (s *Shared) OnGPRDelete(obj any) (GPR, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	g, err := ToGPR(obj)
	if err != nil {
		return GPR{}, false
	}
	s.GPRs.Delete(g.Name, g.ResourceVersion)
	return g, true
}

// ToGPR converts an informer object (unstructured, or typed in tests).
func ToGPR(obj any) (GPR, error) {
	switch o := obj.(type) {
	case *gpuspacev1alpha1.GPUProvisionRequest:
		return GPRFrom(o), nil
	case *unstructured.Unstructured:
		var g gpuspacev1alpha1.GPUProvisionRequest
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.UnstructuredContent(), &g); err != nil {
			return GPR{}, fmt.Errorf("convert GPUProvisionRequest %s: %w", o.GetName(), err)
		}
		return GPRFrom(&g), nil
	default:
		return GPR{}, fmt.Errorf("not a GPUProvisionRequest: %T", obj)
	}
}

// NamespaceWorkspace returns the workspace the namespace belongs to, or "".
func (s *Shared) NamespaceWorkspace(ns string) string {
	n, err := s.Namespaces.Get(ns)
	if err != nil {
		return ""
	}
	return n.Labels[gpuspacev1alpha1.LabelWorkspace]
}
