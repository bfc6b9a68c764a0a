package cli

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/clusters/provision"
)

// clusterFlags are the flags every cluster subcommand shares: how to reach
// the hub.
type clusterFlags struct {
	apikeyFlags
	local string
}

func newClusterCommand() *cobra.Command {
	var f clusterFlags
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Register, list and unregister worker clusters of this gpuspace hub",
		Long: `cluster manages the worker clusters gpuspace places GPRs on, with your hub
kubeconfig's rights. The cluster gpuspace runs in (its --cluster-name) is a
worker without registration. A registered worker's kubeconfig is kept in a
Secret of --namespace; it needs the rights manifests/worker/credential.yaml
grants there.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd.Flags()) },
	}
	cmd.PersistentFlags().StringVar(&f.kubeconfig, "hub-kubeconfig", "", "kubeconfig of the hub (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	cmd.PersistentFlags().StringVar(&f.namespace, "namespace", auth.DefaultNamespace, "gpuspace's namespace on the hub")
	cmd.PersistentFlags().StringVar(&f.local, "cluster-name", v1alpha1.DefaultCluster, "the hub's own cluster name (gpuspace serve --cluster-name)")
	cmd.AddCommand(newClusterRegisterCommand(&f), newClusterListCommand(&f), newClusterUnregisterCommand(&f))
	return cmd
}

func newClusterRegisterCommand(f *clusterFlags) *cobra.Command {
	var kubeconfig, kubeContext string
	cmd := &cobra.Command{
		Use:   "register NAME --kubeconfig FILE [--context C]",
		Short: "Register a worker cluster: check its credential, then create its Secret and Cluster",
		Example: `  kubectl --context gpu-east apply -f manifests/worker/credential.yaml
  hack/worker-kubeconfig.sh gpu-east > east.kubeconfig
  gpuspace cluster register gpu-east --kubeconfig east.kubeconfig`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kc, err := os.ReadFile(kubeconfig)
			if err != nil {
				return err
			}
			ctx, c, cancel, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			cl, err := provision.Register(ctx, c, provision.RegisterOptions{
				Name: args[0], Kubeconfig: kc, Context: kubeContext, Local: f.local, Namespace: f.namespace,
			})
			if err != nil {
				return fmt.Errorf("register %s: %w (nothing was created)", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s registered (Secret %s/%s); `gpuspace cluster list` shows when it is Ready\n",
				cl.Name, f.namespace, cl.Spec.KubeconfigSecret)
			return nil
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the worker cluster (required)")
	cmd.Flags().StringVar(&kubeContext, "context", "", "context of --kubeconfig (default: its current context)")
	_ = cmd.MarkFlagRequired("kubeconfig")
	return cmd
}

func newClusterListCommand(f *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the worker clusters: the hub's own and every registered one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, cancel, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			var list v1alpha1.ClusterList
			if err := c.List(ctx, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tREADY\tVERSION\tNODES\tGPUS BY SHAPE\tHEARTBEAT\tMESSAGE")
			fmt.Fprintf(tw, "%s\tTrue\t\t\t\t\t(the hub's own cluster)\n", f.local)
			for _, cl := range list.Items {
				ready, msg := "Unknown", ""
				if cond := meta.FindStatusCondition(cl.Status.Conditions, v1alpha1.ClusterReady); cond != nil {
					ready, msg = string(cond.Status), cond.Message
				}
				var shapes string
				for i, s := range cl.Status.Capacity {
					if i > 0 {
						shapes += ","
					}
					shapes += fmt.Sprintf("%s:%d", s.Shape, s.GPUs)
				}
				hb := ""
				if t := cl.Status.LastHeartbeatTime; t != nil {
					hb = t.UTC().Format("2006-01-02T15:04:05Z")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", cl.Name, ready, cl.Status.Version, cl.Status.Nodes, shapes, hb, msg)
			}
			return tw.Flush()
		},
	}
}

func newClusterUnregisterCommand(f *clusterFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "unregister NAME",
		Short: "Unregister a worker cluster (refused while GPRs are provisioned there, unless --force)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, cancel, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := provision.Unregister(ctx, c, f.namespace, args[0], force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s unregistered\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "unregister even while GPRs are provisioned there")
	return cmd
}
