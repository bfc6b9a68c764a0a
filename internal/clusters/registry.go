// Package clusters is the hub's registry of worker clusters: for every
// Cluster object it runs a controller-runtime cluster.Cluster (a client and
// a cache of the worker's Nodes) built from the kubeconfig Secret the
// Cluster names, heartbeats the worker's API server, keeps the Cluster's
// status (Ready, version, capacity by shape) and records an Event on every
// change of Ready. Workers come and go with their Cluster objects; nothing
// restarts.
//
// The cluster gpuspace runs in (--cluster-name) is a worker too, served by
// the manager's own client and cache; it needs no Cluster object and is
// always Ready.
//
// Other code uses the small Registry interface: Nodes (every worker's
// nodes, each with its gpuspace.io/cluster label set), Client (the client
// of a node's cluster), Ready, Names and Source (events on worker node and
// Ready changes for controllers).
package clusters

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/kubeclient"
)

// Defaults of Options.
const (
	// DefaultHeartbeat is how often a worker's API server is asked its
	// version.
	DefaultHeartbeat = 10 * time.Second
	// DefaultStatusInterval is how often a Cluster's status is written
	// while Ready does not change: the heartbeat time and capacity are
	// coarse, status writes are a budget.
	DefaultStatusInterval = time.Minute
	// heartbeatTimeout bounds one heartbeat.
	heartbeatTimeout = 5 * time.Second
)

// Options configure a Registry.
type Options struct {
	// Local is the name of the cluster gpuspace runs in (--cluster-name);
	// default v1alpha1.DefaultCluster.
	Local string
	// Namespace holds the kubeconfig Secrets (gpuspace's namespace);
	// default auth.DefaultNamespace.
	Namespace string
	// Heartbeat and StatusInterval: see DefaultHeartbeat and
	// DefaultStatusInterval.
	Heartbeat, StatusInterval time.Duration
	// QPS and Burst throttle each worker's client; zero is
	// DefaultWorkerQPS / DefaultWorkerBurst.
	QPS   float32
	Burst int
}

// DefaultWorkerQPS and DefaultWorkerBurst are the client-side limits of
// the hub's client of each worker cluster (gpuspace serve's
// --worker-kube-api-qps and --worker-kube-api-burst). Dispatching a GPR
// to a worker costs that worker about three requests — the projection's
// create and its status, then on start a patch per bound node — so
// client-go's default of 5 QPS (what bounds MultiKueue to about 1.3
// workloads a second) would cap a worker at 2 GPRs a second. 300 QPS
// dispatches 100 GPRs a second per worker with room for the evictions
// and releases of the same passes, and the burst of 600 takes a pass
// that binds a few hundred nodes at once; each worker has its own
// bucket, so one busy worker never slows another. The worker's
// apiserver keeps its own limits (--max-requests-inflight) to protect
// itself.
const (
	DefaultWorkerQPS   float32 = 300
	DefaultWorkerBurst int     = 600
)

// Registry holds the workers. Create it with New, then SetupWithManager.
type Registry struct {
	opts      Options
	hub       client.Client // the hub's (cached) client: the local cluster
	hubReader client.Reader // uncached: kubeconfig Secrets
	scheme    *runtime.Scheme
	recorder  events.EventRecorder
	// elected is closed once this replica leads: only the leader writes
	// status and Events; every replica runs the workers, so every replica's
	// API sees every cluster.
	elected <-chan struct{}

	mu       sync.RWMutex
	workers  map[string]*worker
	subs     []subscriber
	onChange []func()
}

// New returns a Registry for the hub reached by hub (the manager's
// client), reading kubeconfig Secrets with hubReader.
func New(hub client.Client, hubReader client.Reader, scheme *runtime.Scheme, recorder events.EventRecorder, o Options) *Registry {
	if o.Local == "" {
		o.Local = v1alpha1.DefaultCluster
	}
	if o.Namespace == "" {
		o.Namespace = auth.DefaultNamespace
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = DefaultStatusInterval
	}
	return &Registry{
		opts: o, hub: hub, hubReader: hubReader, scheme: scheme, recorder: recorder,
		workers: map[string]*worker{},
	}
}

// Local is the name of the cluster gpuspace runs in.
func (r *Registry) Local() string { return r.opts.Local }

// worker is one registered cluster and its running cluster.Cluster.
type worker struct {
	name string
	// key identifies the credential the worker runs with (Secret UID and
	// resourceVersion, context): a change restarts it.
	key    string
	server string
	caData []byte
	cl     cluster.Cluster
	disco  *discovery.DiscoveryClient
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	synced     bool
	state      state
	written    state     // what the Cluster's status says, as this worker wrote it
	writtenCap *capacity // and of its nodes; nil: not written yet
	wroteAt    time.Time // when it was written
}

// state is what a heartbeat found.
type state struct {
	ready   bool
	reason  string
	message string
	version string
	at      time.Time
}

// Ready reports whether cluster name is reachable now: the local cluster
// always; a worker whose last heartbeat succeeded. Unknown clusters are
// not Ready.
func (r *Registry) Ready(name string) bool {
	if name == r.opts.Local {
		return true
	}
	w := r.worker(name)
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state.ready
}

// Registered reports whether cluster name is the local cluster or has a
// Cluster object on the hub that is not being deleted (from the hub's
// cache; a read that fails counts as registered: nothing is decided on
// it).
func (r *Registry) Registered(name string) bool {
	if name == r.opts.Local {
		return true
	}
	var c v1alpha1.Cluster
	err := r.hub.Get(context.Background(), client.ObjectKey{Name: name}, &c)
	if apierrors.IsNotFound(err) {
		return false
	}
	return err != nil || c.DeletionTimestamp == nil
}

// Names are the local cluster and every registered cluster, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	out := make([]string, 0, len(r.workers)+1)
	out = append(out, r.opts.Local)
	for n := range r.workers {
		if n != r.opts.Local {
			out = append(out, n)
		}
	}
	r.mu.RUnlock()
	slices.Sort(out)
	return out
}

// Client is the client of cluster name: the hub's for the local cluster,
// else the worker's, whose reads of Nodes come from its cache.
func (r *Registry) Client(name string) (client.Client, bool) {
	if name == r.opts.Local || name == "" {
		return r.hub, true
	}
	w := r.worker(name)
	if w == nil {
		return nil, false
	}
	return w.cl.GetClient(), true
}

// APIReader is the uncached reader of cluster name (the hub's apiReader
// for the local cluster).
func (r *Registry) APIReader(name string) (client.Reader, bool) {
	if name == r.opts.Local || name == "" {
		return r.hubReader, true
	}
	w := r.worker(name)
	if w == nil {
		return nil, false
	}
	return w.cl.GetAPIReader(), true
}

// Endpoint is the API server URL and CA (PEM) of registered cluster
// name, as its kubeconfig has them: what workspace kubeconfigs for that
// cluster point at.
func (r *Registry) Endpoint(name string) (server string, caData []byte, ok bool) {
	w := r.worker(name)
	if w == nil {
		return "", nil, false
	}
	return w.server, w.caData, true
}

// ClusterOf is the cluster a node of the inventory belongs to.
//
// That is the Kubernetes cluster the node is in: the worker whose cache it
// came from (Nodes labels each with its worker's name), else the local
// cluster — also for a local node whose gpuspace.io/cluster label names
// a cluster inside it (a single-cluster install's label clusters), which
// the hub reaches with its own client.
func (r *Registry) ClusterOf(n *corev1.Node) string {
	if c := domain.NodeCluster(n, ""); c != "" && r.worker(c) != nil {
		return c
	}
	return r.opts.Local
}

// Nodes lists every worker's nodes from their caches (not the local
// cluster's: the caller has those), each a copy with the
// gpuspace.io/cluster label set to its worker. The nodes of a worker that
// is not Ready are its last known state with the Ready condition Unknown
// (reason ClusterUnreachable), as the node lifecycle controller marks a
// node whose kubelet stopped reporting: nothing new is placed on them and
// nothing is released because of it. A worker whose cache has not synced
// yet contributes nothing.
func (r *Registry) Nodes(ctx context.Context) ([]*corev1.Node, error) {
	var out []*corev1.Node
	for _, w := range r.snapshot() {
		synced, st := w.status()
		if !synced {
			continue
		}
		var list corev1.NodeList
		if err := w.cl.GetCache().List(ctx, &list); err != nil {
			return nil, fmt.Errorf("list nodes of cluster %s: %w", w.name, err)
		}
		for i := range list.Items {
			out = append(out, workerNode(&list.Items[i], w.name, st))
		}
	}
	return out, nil
}

// workerNode labels a worker's node (a copy) with its cluster, and marks
// it not Ready while the worker is unreachable.
func workerNode(n *corev1.Node, name string, st state) *corev1.Node {
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[v1alpha1.LabelCluster] = name
	if st.ready {
		return n
	}
	msg := fmt.Sprintf("cluster %s is not Ready (%s): %s", name, st.reason, st.message)
	found := false
	for i := range n.Status.Conditions {
		c := &n.Status.Conditions[i]
		if c.Type == corev1.NodeReady {
			c.Status, c.Reason, c.Message, found = corev1.ConditionUnknown, domain.ReasonClusterUnreachable, msg, true
		}
	}
	if !found {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
			Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: domain.ReasonClusterUnreachable, Message: msg,
		})
	}
	return n
}

func (r *Registry) worker(name string) *worker {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.workers[name]
}

// snapshot is the running workers, by name.
func (r *Registry) snapshot() []*worker {
	r.mu.RLock()
	out := make([]*worker, 0, len(r.workers))
	for _, w := range r.workers {
		out = append(out, w)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *worker) int { return strings.Compare(a.name, b.name) })
	return out
}

// subscriber receives the registry's events.
type subscriber struct {
	ch   chan event.GenericEvent
	node predicate.Predicate
}

// Source is a controller source of the registry's events: a worker node
// added or deleted, a worker node updated where nodeUpdate passes it (nil:
// every update), a worker's cache synced, a worker's Ready changed or a
// worker gone. The objects are worker Nodes (with their cluster label) and
// Clusters.
func (r *Registry) Source(h handler.EventHandler, nodeUpdate predicate.Predicate) source.Source {
	ch := make(chan event.GenericEvent, 64)
	r.mu.Lock()
	r.subs = append(r.subs, subscriber{ch: ch, node: nodeUpdate})
	r.mu.Unlock()
	return source.Channel(ch, h)
}

// OnChange calls f on every event Source delivers (every worker node
// add, update and delete, a worker's cache synced, Ready changed, a
// worker gone), unfiltered, on the informer's goroutine: f must be quick
// and must not block. The API's plan view invalidates itself with it.
func (r *Registry) OnChange(f func()) {
	r.mu.Lock()
	r.onChange = append(r.onChange, f)
	r.mu.Unlock()
}

// notify sends obj to every subscriber; a full channel drops the event,
// which is safe for subscribers that map every event to one key (a
// queued event is pending for them already).
func (r *Registry) notify(obj client.Object, update *event.UpdateEvent) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, f := range r.onChange {
		f()
	}
	for _, s := range r.subs {
		if update != nil && s.node != nil && !s.node.Update(*update) {
			continue
		}
		select {
		case s.ch <- event.GenericEvent{Object: obj}:
		default:
		}
	}
}

// RESTConfig reads a Cluster's kubeconfig from its Secret.
func RESTConfig(kubeconfig []byte, context string) (*rest.Config, error) {
	raw, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("parse kubeconfig: %w", err)
	}
	if context != "" {
		if _, ok := raw.Contexts[context]; !ok {
			return nil, fmt.Errorf("kubeconfig has no context %q", context)
		}
	}
	cfg, err := clientcmd.NewNonInteractiveClientConfig(*raw, context, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// start builds and starts the worker of Cluster c with cfg.
func (r *Registry) start(c *v1alpha1.Cluster, key string, cfg *rest.Config) (*worker, error) {
	qps, burst := r.opts.QPS, r.opts.Burst
	if qps <= 0 {
		qps = DefaultWorkerQPS
	}
	if burst <= 0 {
		burst = DefaultWorkerBurst
	}
	cfg = kubeclient.WithLimits(cfg, qps, burst)
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := cluster.New(cfg, func(o *cluster.Options) {
		o.Scheme = r.scheme
		o.Cache = cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	w := &worker{name: c.Name, key: key, server: cfg.Host, caData: cfg.CAData, cl: cl, disco: disco, done: make(chan struct{})}
	// Written status as stored, so a restart of the hub does not write an
	// unchanged Ready again.
	w.written = storedState(c)
	if hb := c.Status.LastHeartbeatTime; hb != nil {
		w.wroteAt = hb.Time
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() {
		defer close(w.done)
		var wg sync.WaitGroup
		wg.Go(func() { _ = cl.Start(ctx) })
		wg.Go(func() {
			if r.watchNodes(ctx, w) && cl.GetCache().WaitForCacheSync(ctx) {
				w.mu.Lock()
				w.synced = true
				w.mu.Unlock()
				r.notify(c.DeepCopy(), nil)
			}
		})
		wg.Go(func() { r.heartbeats(ctx, w) })
		wg.Wait()
	}()
	return w, nil
}

// watchNodes gets the worker's Node informer and adds the registry's
// handler to it, retrying every Heartbeat until it can or ctx ends
// (false). The informer needs the worker's API server (discovery maps
// Node to its resource): a worker unreachable when the hub starts is
// started all the same, its heartbeats say Unreachable, and its cache
// syncs once it answers.
func (r *Registry) watchNodes(ctx context.Context, w *worker) bool {
	for {
		inf, err := w.cl.GetCache().GetInformer(ctx, &corev1.Node{}, cache.BlockUntilSynced(false))
		if err == nil {
			if _, err = inf.AddEventHandler(r.nodeHandler(w)); err == nil {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(r.opts.Heartbeat):
		}
	}
}

// status is whether the worker's cache synced, and its last heartbeat.
func (w *worker) status() (synced bool, st state) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced, w.state
}

// stop stops a worker and waits for it.
func (w *worker) stop() {
	w.cancel()
	<-w.done
}

// nodeHandler turns a worker's node events into registry events.
func (r *Registry) nodeHandler(w *worker) toolscache.ResourceEventHandler {
	label := func(obj any) *corev1.Node {
		n, ok := obj.(*corev1.Node)
		if !ok {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				n, _ = d.Obj.(*corev1.Node)
			}
		}
		if n == nil {
			return nil
		}
		n = n.DeepCopy()
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[v1alpha1.LabelCluster] = w.name
		return n
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if n := label(obj); n != nil {
				r.notify(n, nil)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, n := label(oldObj), label(newObj)
			if o != nil && n != nil {
				r.notify(n, &event.UpdateEvent{ObjectOld: o, ObjectNew: n})
			}
		},
		DeleteFunc: func(obj any) {
			if n := label(obj); n != nil {
				r.notify(n, nil)
			}
		},
	}
}

// heartbeats asks the worker's API server its version every Heartbeat
// until ctx ends, and writes the Cluster's status when Ready changed or
// StatusInterval passed.
func (r *Registry) heartbeats(ctx context.Context, w *worker) {
	t := time.NewTicker(r.opts.Heartbeat)
	defer t.Stop()
	for {
		r.beat(ctx, w)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// beat is one heartbeat.
func (r *Registry) beat(ctx context.Context, w *worker) {
	st := probe(ctx, w.disco)
	if ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	prev := w.state
	w.state = st
	if !st.ready && prev.version != "" {
		st.version = prev.version // keep the last version known
		w.state.version = prev.version
	}
	changed := prev.ready != st.ready || prev.at.IsZero()
	w.mu.Unlock()
	if changed {
		c := &v1alpha1.Cluster{}
		c.Name = w.name
		r.notify(c, nil)
	}
	r.writeStatus(ctx, w, st)
}

// probe asks an API server its version and reads one node: Ready with
// the version, or not Ready with the reason.
func probe(ctx context.Context, disco *discovery.DiscoveryClient) state {
	ctx, cancel := context.WithTimeout(ctx, heartbeatTimeout)
	defer cancel()
	now := time.Now()
	body, err := disco.RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return failed(err, "", now)
	}
	var v version.Info
	if err := json.Unmarshal(body, &v); err != nil {
		return state{reason: v1alpha1.ClusterReasonUnreachable, message: "bad /version answer: " + err.Error(), at: now}
	}
	// /version answers any authenticated caller: a credential whose
	// rights were revoked shows on a read of one node.
	if err := disco.RESTClient().Get().AbsPath("/api/v1/nodes").Param("limit", "1").Do(ctx).Error(); err != nil {
		return failed(err, "list nodes: ", now)
	}
	return state{ready: true, reason: v1alpha1.ClusterReasonReachable, message: "API server " + v.GitVersion + " reached", version: v.GitVersion, at: now}
}

// failed is the state of a heartbeat that failed with err: Unauthorized
// when the credential is refused, else Unreachable.
func failed(err error, what string, at time.Time) state {
	reason := v1alpha1.ClusterReasonUnreachable
	if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
		reason = v1alpha1.ClusterReasonUnauthorized
	}
	return state{reason: reason, message: what + err.Error(), at: at}
}

// isLeader reports whether this replica writes status.
func (r *Registry) isLeader() bool {
	if r.elected == nil {
		return true
	}
	select {
	case <-r.elected:
		return true
	default:
		return false
	}
}
