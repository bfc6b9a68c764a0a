package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gpuspace/gpuspace/internal/dev/controlplane"
	"github.com/gpuspace/gpuspace/internal/dev/devcluster"
)

func newDevCommand() *cobra.Command {
	var (
		stateDir  string
		binDir    string
		nodesFile string
		listen    string
		nclusters int
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole gpuspace system locally on simulated GPU nodes",
		Long: `dev boots a local gpuspace system in the foreground: a real etcd and
kube-apiserver 1.37.1, kube-controller-manager, simulated GPU nodes and the
gpuspace components. No Docker and no GPU are needed. It writes an admin
kubeconfig to <state-dir>/kubeconfig and stops everything on Ctrl-C.

Every flag can also be set as GPUSPACE_<FLAG>, e.g. GPUSPACE_STATE_DIR.`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindEnv(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := devcluster.Options{StateDir: stateDir, BinDir: binDir, Listen: listen, Out: cmd.OutOrStdout(), Clusters: nclusters}
			if nodesFile != "" {
				nodes, err := devcluster.LoadNodes(nodesFile)
				if err != nil {
					return err
				}
				opts.Nodes = nodes
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sys, err := devcluster.Start(ctx, opts)
			if err != nil {
				return err
			}
			return sys.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", ".gpuspace/dev", "directory for the kubeconfig, keys, logs and etcd data")
	cmd.Flags().StringVar(&binDir, "bin-dir", controlplane.BinDir(), "directory holding etcd, kube-apiserver and kube-controller-manager")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the REST API and MCP")
	cmd.Flags().StringVar(&nodesFile, "nodes", "", "YAML file listing the simulated GPU nodes, each in its cluster (default: 3×8 H100-80GB and 3×1 T4 in worker-1; 2×8 A100 and 1 T4 in worker-2; 2×4 L4 in worker-3; 2×4 L40S in the others)")
	cmd.Flags().IntVar(&nclusters, "clusters", 1, "worker clusters: the hub's own (worker-1) and N-1 more, each its own etcd, kube-apiserver and gpuspace-scheduler, registered on the hub")
	return cmd
}
