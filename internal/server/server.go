// Package server runs the gpuspace control plane: the controllers (leader
// elected) and the /api/v1 REST API with MCP at /mcp, on one listener.
// `gpuspace serve` runs it in a cluster; `gpuspace dev` runs it against the
// local control plane.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/internal/clusters"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/kubeclient"
	"github.com/gpuspace/gpuspace/mcp"
)

// Options configures the control plane.
type Options struct {
	// RESTConfig reaches the kube-apiserver. Required.
	RESTConfig *rest.Config
	// Listen is the API's address, e.g. ":8080" or "127.0.0.1:8080".
	Listen string
	// Namespace holds API keys, the signing key and the leader Lease.
	Namespace string
	// LeaderElect makes replicas elect one to run the controllers; every
	// replica serves the API.
	LeaderElect bool
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election,
	// as kube-controller-manager's --leader-elect-* flags do; zero is
	// DefaultLeaseDuration, DefaultRenewDeadline, DefaultRetryPeriod.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// KubeAPIQPS and KubeAPIBurst throttle the process's clients of the
	// kube-apiserver (kubeclient.WithLimits); zero is kubeclient's default.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// WorkerKubeAPIQPS and WorkerKubeAPIBurst throttle the client of each
	// registered worker cluster (projections, node bindings, evictions
	// there); zero is clusters.DefaultWorkerQPS / DefaultWorkerBurst.
	WorkerKubeAPIQPS   float32
	WorkerKubeAPIBurst int
	// DefaultCluster is the cluster of nodes without a gpuspace.io/cluster
	// label.
	DefaultCluster string
	// GPUPrices are USD per GPU-hour by GPU shape (--gpu-price), for the
	// controllers' status.cost and the API's live costs; none: no costs.
	GPUPrices domain.Prices
	// NodeLostGrace is how long a held node may stay NotReady before the
	// GPR loses it (--node-lost-grace); zero: the default.
	NodeLostGrace time.Duration
	// GPUResourceNames are the extended resources that make a pod a GPU pod
	// (--gpu-resource-name): the same names as the scheduler plugin's
	// gpuResourceNames, so eviction and admission agree; none:
	// domain.DefaultGPUResourceNames.
	GPUResourceNames []corev1.ResourceName
	// ClusterHeartbeat is how often each registered worker cluster's API
	// server is heartbeated; zero is clusters.DefaultHeartbeat (tests
	// shorten it).
	ClusterHeartbeat time.Duration
	// API is passed to apiserver.New (RESTConfig and Namespace are filled
	// in from above).
	API apiserver.Config
	// MCPReadOnly serves only the read-only MCP tools;
	// MCPDisableDestructive hides deletes and early release.
	MCPReadOnly, MCPDisableDestructive bool
	// Version is reported by the API and MCP.
	Version string
	// Logger logs; default no-op.
	Logger *zap.Logger
	// SkipControllerNameValidation lets server.Run run more than once in
	// a process (tests); controller-runtime refuses a controller name twice
	// otherwise.
	SkipControllerNameValidation bool
	// OnReady, if set, is called once with the listener's address when the
	// API answers requests.
	OnReady func(addr string, api *apiserver.Server)
}

// Leader election defaults. A replica killed with -9 does not release its
// Lease, so a follower takes over once the Lease has gone unrenewed for
// LeaseDuration and its next try (every RetryPeriod, jittered up to 2.2×)
// comes round: at most about 8 s + 2.2 s, plus starting the controllers on
// caches that are already warm (every replica serves the API from them) —
// well under 15 s, where kube-controller-manager's 15s/10s/2s took 16–22 s.
// The leader gives up when it cannot renew for RenewDeadline: 6 s rides out
// an apiserver or etcd leader change (typically 1–5 s) without stepping
// down. A renewal a second costs one Lease update per second on the leader
// and one read per second per follower.
const (
	DefaultLeaseDuration = 8 * time.Second
	DefaultRenewDeadline = 6 * time.Second
	DefaultRetryPeriod   = 1 * time.Second
)

// leaderElectionJitter is client-go's leaderelection.JitterFactor: a
// renew deadline must exceed the retry period by this factor.
const leaderElectionJitter = 1.2

// leaderElection fills in the default timings and checks them the way
// client-go will, so that a bad flag fails at start, not at election.
func (o *Options) leaderElection() error {
	if o.LeaseDuration == 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = DefaultRenewDeadline
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = DefaultRetryPeriod
	}
	switch {
	case o.LeaseDuration < 0 || o.RenewDeadline < 0 || o.RetryPeriod < 0:
		return errors.New("server: leader election durations must be positive")
	case o.LeaseDuration <= o.RenewDeadline:
		return fmt.Errorf("server: leader election lease duration (%s) must be greater than the renew deadline (%s)", o.LeaseDuration, o.RenewDeadline)
	case float64(o.RenewDeadline) <= leaderElectionJitter*float64(o.RetryPeriod):
		return fmt.Errorf("server: leader election renew deadline (%s) must be greater than %.1f × the retry period (%s)", o.RenewDeadline, leaderElectionJitter, o.RetryPeriod)
	}
	return nil
}

// Run starts everything and blocks until ctx ends or a part fails, then
// shuts the HTTP server down gracefully.
func Run(ctx context.Context, o Options) error {
	if o.RESTConfig == nil {
		return errors.New("server: RESTConfig is required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if err := o.leaderElection(); err != nil {
		return err
	}
	log := o.Logger
	// Every client of the process (manager, API) is throttled the same way
	// as in production, whoever built the configuration.
	restConfig := kubeclient.WithLimits(o.RESTConfig, o.KubeAPIQPS, o.KubeAPIBurst)

	mgr, err := controller.NewManager(restConfig, controller.ManagerOptions{
		LeaderElection:          o.LeaderElect,
		LeaderElectionNamespace: o.Namespace,
		LeaseDuration:           o.LeaseDuration,
		RenewDeadline:           o.RenewDeadline,
		RetryPeriod:             o.RetryPeriod,
		Logger:                  ctrl.Log,
		Cache:                   apiserver.CacheOptions(o.Namespace),
	})
	if err != nil {
		return err
	}
	// The worker clusters registered as Cluster objects; the cluster the
	// manager runs in is the worker named DefaultCluster.
	workers := clusters.New(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetScheme(), mgr.GetEventRecorder(clusters.ControllerName),
		clusters.Options{Local: o.DefaultCluster, Namespace: o.Namespace, QPS: o.WorkerKubeAPIQPS, Burst: o.WorkerKubeAPIBurst,
			Heartbeat: o.ClusterHeartbeat})
	if err := controller.Setup(mgr, controller.Options{DefaultCluster: o.DefaultCluster, SkipNameValidation: o.SkipControllerNameValidation, GPUPrices: o.GPUPrices, NodeLostGrace: o.NodeLostGrace,
		GPUResourceNames: o.GPUResourceNames, Clusters: workers}); err != nil {
		return err
	}
	apiCfg := o.API
	apiCfg.RESTConfig = restConfig
	apiCfg.Namespace = o.Namespace
	apiCfg.DefaultCluster = o.DefaultCluster
	apiCfg.GPUPrices = o.GPUPrices
	if apiCfg.Version == "" {
		apiCfg.Version = o.Version
	}
	// One /metrics for the controllers and the API. The API reads from the
	// manager's cache (Setup added the index it needs): one watch per kind
	// for the whole process. The cache runs on every replica (only the
	// controllers wait for leadership), so followers serve the API too.
	api, err := apiserver.New(apiCfg,
		apiserver.WithLogger(log.Named("api")),
		apiserver.WithMetrics(ctrlmetrics.Registry, ctrlmetrics.Registry),
		apiserver.WithCache(mgr.GetCache()),
		apiserver.WithClusters(workers))
	if err != nil {
		return err
	}
	if err := mgr.Add(api); err != nil {
		return fmt.Errorf("add API to manager: %w", err)
	}
	// MCP tools are the API's operations, called through its handler chain.
	tools, err := mcp.NewServer(api,
		mcp.WithLogger(log.Named("mcp")),
		mcp.WithVersion(o.Version),
		mcp.WithReadOnly(o.MCPReadOnly),
		mcp.WithDisableDestructive(o.MCPDisableDestructive))
	if err != nil {
		return err
	}
	api.Mux().Handle("/mcp", tools.HTTPHandler())

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	srv := newHTTPServer(api.Handler(), defaultTimeouts, log)
	// Event streams never go idle: end them when the shutdown starts, or
	// it waits its whole timeout for them.
	srv.RegisterOnShutdown(api.CloseStreams)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve HTTP: %w", err)
		}
	}()
	go func() {
		if err := mgr.Start(ctx); err != nil {
			errc <- fmt.Errorf("controllers: %w", err)
			return
		}
		errc <- nil
	}()
	log.Info("gpuspace serving", zap.String("addr", ln.Addr().String()), zap.Bool("leaderElect", o.LeaderElect))
	if o.OnReady != nil {
		go func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if api.Ready() {
						o.OnReady(ln.Addr().String(), api)
						return
					}
				}
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("HTTP shutdown", zap.Error(err))
	}
	return runErr
}
