// Package nodesim simulates GPU nodes against a real kube-apiserver: it
// creates Node objects with GPU capacity and the labels the device plugin
// would publish, keeps them Ready with Lease and status heartbeats, and acts
// as their kubelet for pods bound to them (marks them Running, confirms
// graceful deletion). It is gpuspace's equivalent of KWOK, small enough to
// run inside tests and `gpuspace dev`.
package nodesim

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	resourcelisters "k8s.io/client-go/listers/resource/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/util/gpushape"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

// Labels and annotations marking simulated nodes.
const (
	// LabelSimulated is set to "true" on every node this package creates.
	LabelSimulated = "gpuspace.io/simulated"
	// LeaseDuration is what the simulated kubelet promises in its Lease.
	LeaseDuration = 40 * time.Second
)

// Node describes one simulated GPU node.
type Node struct {
	// Name of the Node object. Required.
	Name string `json:"name"`
	// Cluster is the gpuspace cluster name (label gpuspace.io/cluster).
	Cluster string `json:"cluster,omitempty"`
	// InstanceType (label node.kubernetes.io/instance-type).
	InstanceType string `json:"instanceType,omitempty"`
	// Product is the GPU product as NVML reports it, e.g.
	// NVIDIA-H100-80GB-HBM3.
	Product string `json:"product"`
	// MemoryMiB per GPU, as NVML reports it.
	MemoryMiB int64 `json:"memoryMiB"`
	// GPUs on the node.
	GPUs int `json:"gpus"`
	// Region and Zone become the topology.kubernetes.io labels.
	Region string `json:"region,omitempty"`
	Zone   string `json:"zone,omitempty"`
	// ProviderID, e.g. aws:///us-east-1a/i-0abc.
	ProviderID string `json:"providerID,omitempty"`
	// Unschedulable cordons the node.
	Unschedulable bool `json:"unschedulable,omitempty"`
	// Labels added to the node.
	Labels map[string]string `json:"labels,omitempty"`
	// NoIdleSignal makes the node publish no idle signal, as a node
	// without gpuspace's device plugin: it is never released for idleness.
	NoIdleSignal bool `json:"noIdleSignal,omitempty"`
}

// Simulator runs simulated nodes.
type Simulator struct {
	cs        kubernetes.Interface
	heartbeat time.Duration

	now       func() time.Time
	idleQueue workqueue.TypedRateLimitingInterface[string]

	mu      sync.Mutex
	nodes   map[string]bool // name -> ready
	nextIP  int
	idle    map[string]*idleState // node -> its GPU pods and idle signal
	podNode map[string]string     // GPU pod running -> its node

	// claims and claimTemplates read pods' DRA claims (runPods sets them
	// before any pod is seen): a pod with a GPU claim is a GPU pod.
	claims         resourcelisters.ResourceClaimLister
	claimTemplates resourcelisters.ResourceClaimTemplateLister
}

// Option configures a Simulator.
type Option func(*Simulator)

// WithHeartbeat sets how often Leases are renewed (default 10s).
func WithHeartbeat(d time.Duration) Option { return func(s *Simulator) { s.heartbeat = d } }

// New returns a simulator writing through cs. Call Run to start heartbeats
// and the pod lifecycle.
func New(cs kubernetes.Interface, opts ...Option) *Simulator {
	s := &Simulator{cs: cs, heartbeat: 10 * time.Second, nodes: map[string]bool{}, now: time.Now,
		idle: map[string]*idleState{}, podNode: map[string]string{},
		idleQueue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	for _, o := range opts {
		o(s)
	}
	return s
}

// NodeObject returns the Node object for spec, without status.
func NodeObject(spec Node) *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:       spec.Name,
		corev1.LabelOSStable:       "linux",
		corev1.LabelArchStable:     "amd64",
		LabelSimulated:             "true",
		v1alpha1.LabelGPUProduct:   spec.Product,
		v1alpha1.LabelGPUMemory:    strconv.FormatInt(spec.MemoryMiB, 10),
		v1alpha1.LabelGPUCount:     strconv.Itoa(spec.GPUs),
		v1alpha1.LabelGPUShape:     gpushape.Normalize(spec.Product),
		v1alpha1.LabelInstanceType: spec.InstanceType,
		v1alpha1.LabelCluster:      spec.Cluster,
	}
	if spec.Region != "" {
		labels[corev1.LabelTopologyRegion] = spec.Region
	}
	if spec.Zone != "" {
		labels[corev1.LabelTopologyZone] = spec.Zone
	}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	for k, v := range labels {
		if v == "" {
			delete(labels, k)
		}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Labels: labels},
		Spec:       corev1.NodeSpec{Unschedulable: spec.Unschedulable, ProviderID: spec.ProviderID},
	}
}

func nodeStatus(spec Node, ip string, now metav1.Time) corev1.NodeStatus {
	memGiB := spec.MemoryMiB / 1024
	res := corev1.ResourceList{
		corev1.ResourceCPU:                              resource.MustParse("64"),
		corev1.ResourceMemory:                           resource.MustParse("512Gi"),
		corev1.ResourcePods:                             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage:                 resource.MustParse("1Ti"),
		corev1.ResourceName(v1alpha1.ResourceGPU):       *resource.NewQuantity(int64(spec.GPUs), resource.DecimalSI),
		corev1.ResourceName(v1alpha1.ResourceGPUMemory): *resource.NewQuantity(int64(spec.GPUs)*memGiB, resource.DecimalSI),
	}
	return corev1.NodeStatus{
		Capacity:    res,
		Allocatable: res.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Conditions:  conditions(true, now),
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: ip},
			{Type: corev1.NodeHostName, Address: spec.Name},
		},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion:          "v1.37.1",
			OperatingSystem:         "linux",
			Architecture:            "amd64",
			ContainerRuntimeVersion: "gpuspace-sim://1",
			OSImage:                 "gpuspace simulated node",
		},
	}
}

// keepTransitions keeps the lastTransitionTime of each condition whose
// status did not change, as a kubelet does: gpuspace counts how long a
// node has been NotReady from it.
func keepTransitions(old, cur []corev1.NodeCondition) []corev1.NodeCondition {
	for i := range cur {
		for _, o := range old {
			if o.Type == cur[i].Type && o.Status == cur[i].Status && !o.LastTransitionTime.IsZero() {
				cur[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return cur
}

func conditions(ready bool, now metav1.Time) []corev1.NodeCondition {
	readyStatus, reason := corev1.ConditionTrue, "KubeletReady"
	if !ready {
		readyStatus, reason = corev1.ConditionFalse, "KubeletNotReady"
	}
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, r string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: r, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return []corev1.NodeCondition{
		cond(corev1.NodeReady, readyStatus, reason),
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID"),
	}
}

// AddNode creates (or adopts) the node, makes it Ready and removes the
// not-ready taint admission puts on new nodes, as a kubelet and the node
// lifecycle controller would.
func (s *Simulator) AddNode(ctx context.Context, spec Node) (*corev1.Node, error) {
	if spec.Name == "" {
		return nil, fmt.Errorf("simulated node: name is required")
	}
	if spec.GPUs < 0 || spec.MemoryMiB < 0 {
		return nil, fmt.Errorf("simulated node %s: gpus and memoryMiB must not be negative", spec.Name)
	}
	obj := NodeObject(spec)
	idle := !spec.NoIdleSignal
	if idle {
		// A new node has run nothing yet: idle since now, published with
		// the node rather than by a write of its own.
		obj.Annotations = map[string]string{idlesignal.Annotation: idlesignal.Format(s.now()), idlesignal.UtilizationAnnotation: "0"}
	}
	_, err := s.cs.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create node %s: %w", spec.Name, err)
	}
	s.mu.Lock()
	s.nextIP++
	ip := fmt.Sprintf("127.0.%d.%d", 1+s.nextIP/250, 1+s.nextIP%250)
	s.nodes[spec.Name] = true
	s.mu.Unlock()

	now := metav1.Now()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := s.cs.CoreV1().Nodes().Get(ctx, spec.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Status = nodeStatus(spec, ip, now)
		_, err = s.cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("set node %s status: %w", spec.Name, err)
	}
	if err := s.renewLease(ctx, spec.Name); err != nil {
		return nil, err
	}
	if err := s.removeNotReadyTaints(ctx, spec.Name); err != nil {
		return nil, err
	}
	n, err := s.cs.CoreV1().Nodes().Get(ctx, spec.Name, metav1.GetOptions{})
	if err == nil && idle {
		s.startIdle(n, spec.GPUs)
		s.idleQueue.Add(spec.Name)
	}
	return n, err
}

func (s *Simulator) removeNotReadyTaints(ctx context.Context, name string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := s.cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var keep []corev1.Taint
		for _, t := range n.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady && t.Key != corev1.TaintNodeUnreachable {
				keep = append(keep, t)
			}
		}
		if len(keep) == len(n.Spec.Taints) {
			return nil
		}
		n.Spec.Taints = keep
		_, err = s.cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// SetReady flips a simulated node's Ready condition; a not-ready node stops
// renewing its Lease, as a dead kubelet would.
func (s *Simulator) SetReady(ctx context.Context, name string, ready bool) error {
	s.mu.Lock()
	s.nodes[name] = ready
	s.mu.Unlock()
	return s.updateConditions(ctx, name, ready)
}

func (s *Simulator) updateConditions(ctx context.Context, name string, ready bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := s.cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Status.Conditions = keepTransitions(n.Status.Conditions, conditions(ready, metav1.Now()))
		_, err = s.cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

func (s *Simulator) renewLease(ctx context.Context, name string) error {
	leases := s.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(name),
				LeaseDurationSeconds: ptr.To(int32(LeaseDuration.Seconds())),
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		if apierrors.IsNotFound(err) {
			return nil // kube-node-lease does not exist yet; the next beat retries
		}
		return ignoreExists(err)
	}
	if err != nil {
		return fmt.Errorf("get lease %s: %w", name, err)
	}
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (s *Simulator) isSimulated(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.nodes[name]
	return ok
}

// Run keeps the simulated nodes alive and runs their pods until ctx ends.
func (s *Simulator) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.heartbeats(ctx)
	}()
	go func() {
		defer wg.Done()
		s.runPods(ctx)
	}()
	wg.Wait()
}

func (s *Simulator) heartbeats(ctx context.Context) {
	beats := 0
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		beats++
		s.mu.Lock()
		nodes := make(map[string]bool, len(s.nodes))
		for n, r := range s.nodes {
			nodes[n] = r
		}
		s.mu.Unlock()
		for name, ready := range nodes {
			if !ready {
				continue
			}
			_ = s.renewLease(ctx, name)
			// Kubelets post status every few heartbeats even when nothing
			// changed; the node lifecycle controller reads either signal.
			if beats%4 == 0 {
				_ = s.updateConditions(ctx, name, true)
			}
		}
	}, s.heartbeat)
}

// runPods is the simulated kubelet's pod lifecycle: a pod bound to a
// simulated node goes Running at once; a pod being deleted gracefully is
// confirmed gone, as a kubelet does once its containers stopped.
func (s *Simulator) runPods(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(s.cs, 0)
	podInformer := factory.Core().V1().Pods()
	claimInformer, templateInformer := factory.Resource().V1().ResourceClaims(), factory.Resource().V1().ResourceClaimTemplates()
	s.claims, s.claimTemplates = claimInformer.Lister(), templateInformer.Lister()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	enqueue := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok && pod.Spec.NodeName != "" && s.isSimulated(pod.Spec.NodeName) {
			queue.Add(pod.Namespace + "/" + pod.Name)
		}
	}
	_, _ = podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	_, _ = podInformer.Informer().AddEventHandler(s.idleHandlers(s.idleQueue))
	lister := podInformer.Lister()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced,
		claimInformer.Informer().HasSynced, templateInformer.Informer().HasSynced) {
		return
	}
	go func() {
		<-ctx.Done()
		queue.ShutDown()
		s.idleQueue.ShutDown()
	}()
	go s.runIdle(ctx, s.idleQueue)
	for {
		key, shutdown := queue.Get()
		if shutdown {
			return
		}
		ns, name, _ := cache.SplitMetaNamespaceKey(key)
		pod, err := lister.Pods(ns).Get(name)
		if err == nil {
			err = s.syncPod(ctx, pod)
		}
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

func (s *Simulator) syncPod(ctx context.Context, pod *corev1.Pod) error {
	pods := s.cs.CoreV1().Pods(pod.Namespace)
	if pod.DeletionTimestamp != nil {
		return pods.Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
	}
	if pod.Status.Phase != corev1.PodPending && pod.Status.Phase != "" {
		return nil
	}
	now := metav1.Now()
	p := pod.DeepCopy()
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &now
	p.Status.HostIP = "127.0.0.1"
	p.Status.PodIP = podIP(p)
	p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
	p.Status.Conditions = nil
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     "sim://" + c.Image,
			ContainerID: "sim://" + string(p.UID) + "/" + c.Name,
			Ready:       true,
			Started:     ptr.To(true),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

// podIP derives a stable, never-contacted address from the pod's UID.
func podIP(p *corev1.Pod) string {
	var h uint32
	for _, c := range string(p.UID) {
		h = h*31 + uint32(c)
	}
	return fmt.Sprintf("10.244.%d.%d", (h>>8)%256, 1+h%254)
}
