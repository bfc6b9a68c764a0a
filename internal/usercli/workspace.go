package usercli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/gpuspace/gpuspace/apiserver/client"
)

func newWorkspaceCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "ws",
		Aliases: []string{"workspace", "workspaces"},
		Short:   "List your workspaces and get their kubeconfigs",
	}
	c.AddCommand(newWSListCommand(g), newWSGetCommand(g), newWSKubeconfigCommand(g))
	return c
}

func newWSListCommand(g *globals) *cobra.Command {
	return withOutput(g, &cobra.Command{
		Use: "list", Short: "List the workspaces you may read", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.ListWorkspacesWithResponse(cmd.Context())
			if err := check(r, err, nil); err != nil {
				return err
			}
			var items []client.WorkspaceSummary
			if r.JSON200.Data.Workspaces != nil {
				items = *r.JSON200.Data.Workspaces
			}
			return render(cmd.OutOrStdout(), g.output, items, func() *table {
				t := &table{header: []string{"NAME", "READY", "CLUSTERS", "ACTIVE GPR", "QUEUED", "USER"}}
				for _, w := range items {
					t.add(w.Name, strconv.FormatBool(w.Ready), join(w.Clusters), dash(w.ActiveGPR), fmt.Sprint(w.QueuedGPRs), dash(w.Username))
				}
				return t
			})
		},
	})
}

func newWSGetCommand(g *globals) *cobra.Command {
	return withOutput(g, &cobra.Command{
		Use: "get WORKSPACE", Short: "Show a workspace", Args: cobra.ExactArgs(1),
		ValidArgsFunction: g.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.GetWorkspaceWithResponse(cmd.Context(), args[0])
			if err := check(r, err, nil); err != nil {
				return err
			}
			w := r.JSON200.Data
			return render(cmd.OutOrStdout(), g.output, w, func() *table {
				t := &table{header: []string{"FIELD", "VALUE"}}
				t.add("name", w.Name)
				t.add("description", dash(w.SliceDescription))
				t.add("user", dash(w.Username))
				t.add("clusters", join(w.Clusters))
				t.add("health", dash(string(w.Status.SliceHealthStatus)))
				t.add("active GPR", dash(w.ActiveGPR))
				t.add("queued GPRs", fmt.Sprint(w.QueuedGPRs))
				t.add("total cost", dash(w.TotalCost))
				return t
			})
		},
	})
}

func newWSKubeconfigCommand(g *globals) *cobra.Command {
	var cluster, file, into string
	var noSwitch bool
	c := &cobra.Command{
		Use:   "kubeconfig WORKSPACE [--cluster C] [--file F]",
		Short: "Merge the workspace's kubeconfig into ~/.kube/config (or write it to a file)",
		Long: `Get a kubeconfig for the workspace's namespaces on one of its clusters
(--cluster, needed when it has several) and merge its contexts, clusters
and user into your kubeconfig ($KUBECONFIG's first file, else
~/.kube/config, or --kubeconfig), switching to its first context unless
--no-switch. With --file the kubeconfig is written to that file instead
("-" prints it), and nothing is merged.`,
		Example: `  gpuspace ws kubeconfig team-a && kubectl get pods
  gpuspace ws kubeconfig team-a --cluster worker-2 --file team-a.kubeconfig`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			req := client.KubeconfigRequest{WorkspaceName: &args[0]}
			if cluster != "" {
				req.ClusterName = &cluster
			}
			r, err := s.api.CreateWorkspaceKubeconfigWithResponse(cmd.Context(), req)
			if err := check(r, err, map[string]string{"clusterName": "--cluster"}); err != nil {
				return err
			}
			kc := r.JSON200.Data.KubeConfig
			switch file {
			case "-":
				printf(cmd.OutOrStdout(), "%s", kc)
				return nil
			case "":
			default:
				if err := os.WriteFile(file, []byte(kc), 0o600); err != nil {
					return err
				}
				printf(cmd.OutOrStdout(), "Wrote the kubeconfig of %s to %s.\n", args[0], file)
				return nil
			}
			path, cur, err := mergeKubeconfig(into, []byte(kc), !noSwitch)
			if err != nil {
				return err
			}
			printf(cmd.OutOrStdout(), "Merged the kubeconfig of %s into %s", args[0], path)
			if cur != "" {
				printf(cmd.OutOrStdout(), "; current context %q", cur)
			}
			printf(cmd.OutOrStdout(), ".\n")
			return nil
		},
	}
	g.addFlags(c.Flags(), false)
	c.Flags().StringVar(&cluster, "cluster", "", "Cluster of the workspace (clusterName); needed when it has several")
	c.Flags().StringVar(&file, "file", "", "Write the kubeconfig to this file (\"-\": print it) instead of merging")
	c.Flags().StringVar(&into, "kubeconfig", "", "Kubeconfig to merge into (default: $KUBECONFIG's first file, else ~/.kube/config)")
	c.Flags().BoolVar(&noSwitch, "no-switch", false, "Do not switch the current context")
	return c
}

// mergeKubeconfig merges the clusters, users and contexts of kc into the
// kubeconfig at path (the default one for ""), replacing entries of the
// same names, and returns the path and the context switched to.
func mergeKubeconfig(path string, kc []byte, switchContext bool) (string, string, error) {
	if path == "" {
		path = clientcmd.RecommendedHomeFile
		if env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
			path = filepath.SplitList(env)[0]
		}
	}
	add, err := clientcmd.Load(kc)
	if err != nil {
		return "", "", fmt.Errorf("the server's kubeconfig: %w", err)
	}
	dst, err := clientcmd.LoadFromFile(path)
	if os.IsNotExist(err) {
		dst, err = clientcmdapi.NewConfig(), nil
	}
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	for k, v := range add.Clusters {
		dst.Clusters[k] = v
	}
	for k, v := range add.AuthInfos {
		dst.AuthInfos[k] = v
	}
	for k, v := range add.Contexts {
		dst.Contexts[k] = v
	}
	cur := ""
	if switchContext {
		cur = add.CurrentContext
		if cur == "" {
			for k := range add.Contexts {
				if cur == "" || k < cur {
					cur = k
				}
			}
		}
		if cur != "" {
			dst.CurrentContext = cur
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", "", err
	}
	if err := clientcmd.WriteToFile(*dst, path); err != nil {
		return "", "", err
	}
	return path, cur, nil
}

func (g *globals) completeWorkspaces(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	s, err := g.connect(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	r, err := s.api.ListWorkspacesWithResponse(cmd.Context())
	if err != nil || r.JSON200 == nil || r.JSON200.Data.Workspaces == nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []string
	for _, w := range *r.JSON200.Data.Workspaces {
		names = append(names, w.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func join(p *[]string) string {
	if p == nil || len(*p) == 0 {
		return "-"
	}
	return strings.Join(*p, ",")
}
