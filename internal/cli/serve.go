package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/clusters"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/util/kubeclient"
)

func newServeCommand() *cobra.Command {
	var (
		kubeconfig, listen, namespace, cluster string
		leaderElect                            bool
		leaseDuration, renewDeadline, retryPer time.Duration
		nodeLostGrace                          time.Duration
		gpuResourceNames                       []string
		kubeAPIQPS                             float32
		kubeAPIBurst                           int
		workerQPS                              float32
		workerBurst                            int
		tokenTTL, kubeconfigTokenTTL           time.Duration
		kubeconfigServer                       string
		maxBody                                int64
		logFormat, logLevel                    string
		mcpReadOnly, mcpDisableDestructive     bool
		gpuPrices                              []string
		sso                                    oidcFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gpuspace control plane: controllers, REST API and MCP",
		Long: `serve runs the workspace and GPR controllers (leader-elected when
--leader-elect is set, so several replicas can run) and serves the /api/v1
REST API, MCP at /mcp, /healthz, /readyz, /metrics and the OpenAPI document
on --listen.

Every flag can also be set as GPUSPACE_<FLAG>, e.g. GPUSPACE_LISTEN.`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeAPIQPS <= 0 || kubeAPIBurst <= 0 {
				return fmt.Errorf("--kube-api-qps and --kube-api-burst must be positive")
			}
			if workerQPS <= 0 || workerBurst <= 0 {
				return fmt.Errorf("--worker-kube-api-qps and --worker-kube-api-burst must be positive")
			}
			oidcCfg, err := sso.config()
			if err != nil {
				return err
			}
			prices, err := domain.ParsePrices(gpuPrices)
			if err != nil {
				return fmt.Errorf("--gpu-price: %w", err)
			}
			zl, _, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			defer zl.Sync() //nolint:errcheck // nothing to do about it at exit
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err = server.Run(ctx, server.Options{
				RESTConfig:            cfg,
				Listen:                listen,
				Namespace:             namespace,
				LeaderElect:           leaderElect,
				LeaseDuration:         leaseDuration,
				RenewDeadline:         renewDeadline,
				RetryPeriod:           retryPer,
				KubeAPIQPS:            kubeAPIQPS,
				KubeAPIBurst:          kubeAPIBurst,
				WorkerKubeAPIQPS:      workerQPS,
				WorkerKubeAPIBurst:    workerBurst,
				DefaultCluster:        cluster,
				Logger:                zl,
				Version:               Version,
				MCPReadOnly:           mcpReadOnly,
				MCPDisableDestructive: mcpDisableDestructive,
				GPUPrices:             prices,
				NodeLostGrace:         nodeLostGrace,
				GPUResourceNames:      resourceNames(gpuResourceNames),
				API: apiserver.Config{
					TokenTTL:           tokenTTL,
					KubeconfigTokenTTL: kubeconfigTokenTTL,
					KubeconfigServer:   kubeconfigServer,
					MaxBodyBytes:       maxBody,
					Version:            Version,
					OIDC:               oidcCfg,
				},
			})
			if err != nil {
				zl.Error("gpuspace stopped", zap.Error(err))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig to reach the cluster (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	f.StringVar(&listen, "listen", ":8080", "address of the REST API, MCP, health and metrics")
	f.StringVar(&namespace, "namespace", auth.DefaultNamespace, "namespace for API keys, the token signing key and the leader Lease")
	f.StringVar(&cluster, "cluster-name", v1alpha1.DefaultCluster, "cluster name of nodes without a gpuspace.io/cluster label")
	f.BoolVar(&leaderElect, "leader-elect", false, "elect one replica to run the controllers (set it when running more than one)")
	f.DurationVar(&leaseDuration, "leader-elect-lease-duration", server.DefaultLeaseDuration, "how long followers wait after the leader's last renewal before taking over (a killed leader's failover time)")
	f.DurationVar(&renewDeadline, "leader-elect-renew-deadline", server.DefaultRenewDeadline, "how long the leader retries renewing before it gives up leading; less than the lease duration")
	f.DurationVar(&retryPer, "leader-elect-retry-period", server.DefaultRetryPeriod, "how often replicas try to acquire or renew the lease")
	f.Float32Var(&kubeAPIQPS, "kube-api-qps", kubeclient.DefaultQPS, "requests per second each client of the kube-apiserver may make")
	f.IntVar(&kubeAPIBurst, "kube-api-burst", kubeclient.DefaultBurst, "burst of requests each client of the kube-apiserver may make above --kube-api-qps")
	f.Float32Var(&workerQPS, "worker-kube-api-qps", clusters.DefaultWorkerQPS, "requests per second the client of each registered worker cluster's kube-apiserver may make (projections, node bindings, evictions)")
	f.IntVar(&workerBurst, "worker-kube-api-burst", clusters.DefaultWorkerBurst, "burst of requests the client of each worker cluster may make above --worker-kube-api-qps")
	f.DurationVar(&tokenTTL, "token-ttl", auth.DefaultTokenTTL, "lifetime of bearer tokens from POST /api/v1/auth")
	f.DurationVar(&kubeconfigTokenTTL, "kubeconfig-token-ttl", 8*time.Hour, "lifetime of the token in workspace kubeconfigs (at least 10m)")
	sso.add(f)
	f.StringVar(&kubeconfigServer, "kubeconfig-server", "", "kube-apiserver URL written into workspace kubeconfigs (default: the one gpuspace uses)")
	f.Int64Var(&maxBody, "max-body-bytes", 1<<20, "largest request body the API accepts")
	f.BoolVar(&mcpReadOnly, "mcp-read-only", false, "serve only read-only tools at /mcp")
	f.BoolVar(&mcpDisableDestructive, "mcp-disable-destructive", false, "hide destructive tools (deletes, early release) at /mcp")
	f.StringSliceVar(&gpuPrices, "gpu-price", nil, "price of a GPU shape in USD per GPU-hour, SHAPE=USD (e.g. H100=2.49), for GPRs' status.cost and gpuspace_gpr_cost_total; repeat it or separate with commas; none: costs are empty")
	f.DurationVar(&nodeLostGrace, "node-lost-grace", domain.DefaultNodeLostGrace, "how long a node a provisioned GPR holds may stay NotReady before the GPR loses it (then it is replaced by a free node, requeued, or runs short; a deleted node is lost at once)")
	f.StringSliceVar(&gpuResourceNames, "gpu-resource-name", nil, "an extended resource that makes a pod a GPU pod (evicted from nodes bound to another workspace); repeat it or separate with commas; set it to the scheduler plugin's gpuResourceNames; none: nvidia.com/gpu")
	f.StringVar(&logFormat, "log-format", "json", "log format: json or console")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

// resourceNames are the --gpu-resource-name values as resource names; nil
// for none, so that the default applies.
func resourceNames(names []string) []corev1.ResourceName {
	if len(names) == 0 {
		return nil
	}
	out := make([]corev1.ResourceName, len(names))
	for i, n := range names {
		out[i] = corev1.ResourceName(n)
	}
	return out
}
