// Package controller wires gpuspace's controllers into a controller-runtime
// manager: the Workspace controller (namespaces, labels, ServiceAccounts,
// RoleBindings), the GPR controller (queue, planner, node binding,
// expiry, release) and the auto-GPR controller (GPRs from templates for
// held pods), plus the workspace-user ClusterRole they rely on.
//
// The gpuspace binary creates a manager with NewManager (or its own, with
// a scheme from Scheme) and calls Setup before mgr.Start:
//
//	mgr, err := controller.NewManager(cfg, controller.ManagerOptions{LeaderElection: true})
//	if err != nil { ... }
//	if err := controller.Setup(mgr, controller.Options{}); err != nil { ... }
//	return mgr.Start(ctx)
package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller/gpr"
	"github.com/gpuspace/gpuspace/controller/projection"
	"github.com/gpuspace/gpuspace/controller/template"
	"github.com/gpuspace/gpuspace/controller/workspace"
	"github.com/gpuspace/gpuspace/internal/clusters"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// Options configure the controllers.
type Options struct {
	// DefaultCluster is the cluster of nodes without a gpuspace.io/cluster
	// label; default v1alpha1.DefaultCluster ("worker-1").
	DefaultCluster string
	// Clock tells the time for expiry and estimates; default the real
	// clock. Tests inject a fake one.
	Clock clock.PassiveClock
	// SkipNameValidation lets several managers in one process register
	// controllers of the same name (tests).
	SkipNameValidation bool
	// Clusters is the worker cluster registry; Setup runs it in mgr and
	// the GPR controller plans over, and binds in, every worker. Nil: only
	// the cluster the manager runs in.
	Clusters *clusters.Registry
	// GPUPrices are USD per GPU-hour by GPU shape, for status.cost; none:
	// costs stay empty.
	GPUPrices domain.Prices
	// NodeLostGrace is how long a node a provisioned GPR holds may stay
	// NotReady before it is lost; zero: domain.DefaultNodeLostGrace.
	NodeLostGrace time.Duration
	// GPUResourceNames are the extended resources that make a pod a GPU
	// pod (the scheduler plugin's gpuResourceNames); nil:
	// domain.DefaultGPUResourceNames.
	GPUResourceNames []corev1.ResourceName
}

// Scheme returns a scheme with the built-in APIs and gpuspace.io/v1alpha1,
// which the controllers need.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("add built-in types: %w", err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("add gpuspace types: %w", err)
	}
	return s, nil
}

// ManagerOptions are the manager settings gpuspace exposes as flags.
type ManagerOptions struct {
	// MetricsBindAddress serves Prometheus metrics at /metrics, e.g.
	// ":8081"; "0" (the default when empty) disables the server, for
	// callers that serve metrics.Registry themselves.
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz; empty disables.
	HealthProbeBindAddress string
	// LeaderElection turns on leader election with a Lease, so only one
	// replica acts.
	LeaderElection bool
	// LeaderElectionNamespace holds the Lease; default "kube-system" when
	// run outside a cluster, the pod's namespace inside one.
	LeaderElectionNamespace string
	// LeaderElectionID is the Lease name; default "gpuspace-controller".
	LeaderElectionID string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election;
	// zero keeps controller-runtime's defaults (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Logger is the manager's logger; default ctrl.Log.
	Logger logr.Logger
	// Cache shapes the manager's informer cache. `gpuspace serve` narrows
	// Secrets to the API keys there, because the API reads from the same
	// cache (apiserver.CacheOptions) instead of watching everything twice.
	// Without a DefaultTransform the cache strips managedFields: nothing
	// reads them, and a plan pass copies every cached GPR (at 10k GPRs
	// managedFields were half of the copying).
	Cache cache.Options
}

// NewManager returns a controller-runtime manager for gpuspace's
// controllers. Leader election releases the Lease when the manager stops,
// so a replacement takes over at once.
func NewManager(cfg *rest.Config, o ManagerOptions) (manager.Manager, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	if o.MetricsBindAddress == "" {
		o.MetricsBindAddress = "0"
	}
	if o.LeaderElectionID == "" {
		o.LeaderElectionID = "gpuspace-controller"
	}
	if o.LeaderElection && o.LeaderElectionNamespace == "" {
		if _, err := rest.InClusterConfig(); err != nil {
			o.LeaderElectionNamespace = "kube-system"
		}
	}
	if o.Cache.DefaultTransform == nil {
		o.Cache.DefaultTransform = cache.TransformStripManagedFields()
	}
	mo := manager.Options{
		Scheme:                        scheme,
		Logger:                        o.Logger,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         o.Cache,
	}
	if o.LeaseDuration > 0 {
		mo.LeaseDuration = &o.LeaseDuration
	}
	if o.RenewDeadline > 0 {
		mo.RenewDeadline = &o.RenewDeadline
	}
	if o.RetryPeriod > 0 {
		mo.RetryPeriod = &o.RetryPeriod
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	if o.HealthProbeBindAddress != "" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, fmt.Errorf("healthz: %w", err)
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return nil, fmt.Errorf("readyz: %w", err)
		}
	}
	return mgr, nil
}

// Setup registers the Workspace, GPR and auto-GPR controllers with mgr,
// and a leader-elected start-up task that creates the workspace-user
// ClusterRole.
// mgr's scheme must hold the built-in types and gpuspace.io/v1alpha1 (see
// Scheme).
func Setup(mgr manager.Manager, opts Options) error {
	if opts.DefaultCluster == "" {
		opts.DefaultCluster = v1alpha1.DefaultCluster
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	var skip *bool
	if opts.SkipNameValidation {
		skip = &opts.SkipNameValidation
	}
	ctx := context.Background()
	ws := workspace.New(mgr.GetClient(), mgr.GetAPIReader()).WithRecorder(mgr.GetEventRecorder(workspace.ControllerName))
	if opts.Clusters != nil {
		ws = ws.WithClusters(opts.Clusters)
	}
	if err := ws.SetupWithManager(ctx, mgr, skip); err != nil {
		return fmt.Errorf("workspace controller: %w", err)
	}
	estimates, estQPS, estBurst, err := estimateClient(mgr)
	if err != nil {
		return err
	}
	apiReader := mgr.GetAPIReader()
	var gprOpts []gpr.Option
	if opts.Clusters != nil {
		if err := opts.Clusters.SetupWithManager(mgr, skip); err != nil {
			return fmt.Errorf("cluster registry: %w", err)
		}
		// Live node reads confirm decisions over the same clusters as
		// the plan.
		apiReader = opts.Clusters.Reader(apiReader)
		gprOpts = append(gprOpts, gpr.WithClusters(opts.Clusters))
	}
	gprOpts = append(gprOpts, gpr.WithEstimateClient(estimates), gpr.WithEstimateRate(estQPS, estBurst), gpr.WithPrices(opts.GPUPrices), gpr.WithNodeLostGrace(opts.NodeLostGrace),
		gpr.WithGPUResourceNames(opts.GPUResourceNames))
	g := gpr.New(mgr.GetClient(), apiReader, opts.Clock, mgr.GetEventRecorder(gpr.ControllerName), opts.DefaultCluster, gprOpts...)
	if err := g.SetupWithManager(mgr, skip); err != nil {
		return fmt.Errorf("GPR controller: %w", err)
	}
	if opts.Clusters != nil {
		// Each worker's scheduler reads the GPRs of its cluster from
		// projections there: workers hold no hub credential.
		if err := projection.New(mgr.GetClient(), opts.Clusters, projection.WithClock(opts.Clock)).SetupWithManager(mgr, skip); err != nil {
			return fmt.Errorf("GPR projection controller: %w", err)
		}
	}
	if err := template.New(mgr.GetClient(), mgr.GetEventRecorder(template.ControllerName)).SetupWithManager(mgr, skip); err != nil {
		return fmt.Errorf("auto-GPR controller: %w", err)
	}
	err = mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		log := mgr.GetLogger().WithName("clusterrole")
		// The API may be briefly unavailable at start-up: retry. Without
		// the right to create or update ClusterRoles (a locked-down
		// install), the role shipped in manifests/rbac is used as it is.
		for {
			err := workspace.EnsureClusterRole(ctx, mgr.GetAPIReader(), mgr.GetClient())
			if err == nil {
				return nil
			}
			if apierrors.IsForbidden(err) {
				log.Info("cannot manage the workspace-user ClusterRole; apply manifests/rbac", "error", err.Error())
				return nil
			}
			log.Error(err, "ensure workspace-user ClusterRole")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
	}))
	if err != nil {
		return fmt.Errorf("add ClusterRole task: %w", err)
	}
	return nil
}

// estimateClient is a client for estimate bookkeeping, with the rate its
// writer is paced at: half the manager's QPS and burst, so estimate writes
// never spend the tokens decision writes need. The client itself is not
// rate-limited: the writer waits for its tokens before it takes the pass
// lock (gpr.WithEstimateRate), not inside it.
func estimateClient(mgr manager.Manager) (client.Client, float32, int, error) {
	cfg := rest.CopyConfig(mgr.GetConfig())
	cfg.RateLimiter = nil
	qps, burst := cfg.QPS, cfg.Burst
	if qps <= 0 {
		qps, burst = rest.DefaultQPS, rest.DefaultBurst
	}
	qps, burst = max(qps/2, 1), max(burst/2, 1)
	cfg.QPS = -1 // no client-side limiter: the writer paces itself
	c, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("estimate client: %w", err)
	}
	return c, qps, burst, nil
}
