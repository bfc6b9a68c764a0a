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
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/controller"
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
	// DefaultCluster is the cluster of nodes without a gpuspace.io/cluster
	// label.
	DefaultCluster string
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

// Run starts everything and blocks until ctx ends or a part fails, then
// shuts the HTTP server down gracefully.
func Run(ctx context.Context, o Options) error {
	if o.RESTConfig == nil {
		return errors.New("server: RESTConfig is required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	log := o.Logger

	mgr, err := controller.NewManager(o.RESTConfig, controller.ManagerOptions{
		LeaderElection:          o.LeaderElect,
		LeaderElectionNamespace: o.Namespace,
		Logger:                  ctrl.Log,
		Cache:                   apiserver.CacheOptions(o.Namespace),
	})
	if err != nil {
		return err
	}
	if err := controller.Setup(mgr, controller.Options{DefaultCluster: o.DefaultCluster, SkipNameValidation: o.SkipControllerNameValidation}); err != nil {
		return err
	}
	apiCfg := o.API
	apiCfg.RESTConfig = o.RESTConfig
	apiCfg.Namespace = o.Namespace
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
		apiserver.WithCache(mgr.GetCache()))
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
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
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
