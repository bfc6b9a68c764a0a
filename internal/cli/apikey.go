package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/controller"
)

// apikeyFlags are the flags every apikey subcommand shares.
type apikeyFlags struct {
	kubeconfig, namespace string
}

func (f *apikeyFlags) client() (client.Client, error) {
	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return nil, err
	}
	scheme, err := controller.Scheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// connect returns a client and a context bounding the command's calls to
// the cluster; call cancel when done.
func (f *apikeyFlags) connect(parent context.Context) (context.Context, client.Client, context.CancelFunc, error) {
	c, err := f.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(parent, 30*time.Second)
	return ctx, c, cancel, nil
}

func newAPIKeyCommand() *cobra.Command {
	var f apikeyFlags
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Create, list and delete API keys directly in the cluster (for the first Owner key)",
		Long: `apikey manages gpuspace API keys with your kubeconfig's rights, without
the REST API: use it to create the first Owner key. Keys are stored only as
hashes, in Secrets of --namespace; a key is printed once, at creation.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd.Flags()) },
	}
	cmd.PersistentFlags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	cmd.PersistentFlags().StringVar(&f.namespace, "namespace", auth.DefaultNamespace, "namespace of gpuspace's API key Secrets")
	cmd.AddCommand(newAPIKeyCreateCommand(&f), newAPIKeyListCommand(&f), newAPIKeyDeleteCommand(&f), newRotateSigningKeyCommand(&f))
	return cmd
}

func newAPIKeyCreateCommand(f *apikeyFlags) *cobra.Command {
	var (
		req        auth.KeyRequest
		role       string
		validUntil string
		quiet      bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an API key and print it (shown only this once)",
		Example: `  gpuspace apikey create --name admin --role Owner
  gpuspace apikey create --name ci --role Editor --workspace team-a --valid-until 2027-01-01T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.Role = auth.Role(role)
			if validUntil != "" {
				t, err := time.Parse(time.RFC3339, validUntil)
				if err != nil {
					return fmt.Errorf("--valid-until %q: want RFC 3339, e.g. 2027-01-01T00:00:00Z", validUntil)
				}
				req.ValidUntil = t
			}
			ctx, c, cancel, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			key, info, err := CreateAPIKey(ctx, c, f.namespace, req)
			if err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(cmd.OutOrStdout(), key)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "API key %s (%s, role %s) created. It is shown only now:\n\n%s\n\nExchange it for a bearer token: POST /api/v1/auth {\"apiKey\": \"...\"}\n", info.Name, info.ID, info.Role, key)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Name, "name", "", "name of the key (required)")
	fl.StringVar(&role, "role", string(auth.RoleOwner), "Owner, Editor or Viewer")
	fl.StringVar(&req.Workspace, "workspace", "", "workspace an Editor (required) or Viewer (optional) key is limited to")
	fl.StringVar(&req.UserName, "user", "", "whom the key is for")
	fl.StringVar(&req.Description, "description", "", "free text")
	fl.StringVar(&validUntil, "valid-until", "", "when the key stops working (RFC 3339); default never")
	fl.BoolVar(&quiet, "quiet", false, "print only the key")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

// CreateAPIKey creates the key's namespace if needed (the first key may
// come before gpuspace ever ran) and the key.
func CreateAPIKey(ctx context.Context, c client.Client, namespace string, req auth.KeyRequest) (string, auth.KeyInfo, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", auth.KeyInfo{}, fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	return auth.CreateKey(ctx, c, namespace, req, time.Now())
}

func newAPIKeyListCommand(f *apikeyFlags) *cobra.Command {
	var workspace, output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List API keys (never the keys themselves)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, cancel, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			keys, err := auth.ListKeys(ctx, c, f.namespace, workspace)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(keys)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tROLE\tWORKSPACE\tUSER\tVALID UNTIL\tCREATED")
			for _, k := range keys {
				until := "never"
				if k.ValidUntil != nil {
					until = k.ValidUntil.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.Workspace, k.UserName, until, k.CreatedAt.Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&workspace, "workspace", "", "only keys limited to this workspace")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func newAPIKeyDeleteCommand(f *apikeyFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID|NAME",
		Short: "Delete an API key; tokens issued for it stop working",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, cancel, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			info, err := auth.DeleteKey(ctx, c, f.namespace, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "API key %s (%s) deleted\n", info.Name, info.ID)
			return nil
		},
	}
}

func newRotateSigningKeyCommand(f *apikeyFlags) *cobra.Command {
	var dropPrevious bool
	cmd := &cobra.Command{
		Use:   "rotate-signing-key",
		Short: "Replace the key bearer tokens are signed with",
		Long: `rotate-signing-key writes a new random token signing key. Running servers
pick it up within moments, without a restart. Tokens signed with the key it
replaces stay valid until they expire (the token lifetime, 15 minutes by
default), so nobody is signed out; --drop-previous revokes them at once
(everyone exchanges their API key again). API keys are not affected.`,
		Example: `  gpuspace apikey rotate-signing-key                  # routine rotation
  gpuspace apikey rotate-signing-key --drop-previous  # the key leaked`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, c, cancel, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if err := auth.RotateSigningKey(ctx, c, f.namespace, dropPrevious); err != nil {
				return err
			}
			if dropPrevious {
				fmt.Fprintln(cmd.OutOrStdout(), "token signing key rotated; tokens issued before now no longer work")
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "token signing key rotated; tokens issued before now work until they expire")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dropPrevious, "drop-previous", false, "also stop accepting tokens signed with the replaced key")
	return cmd
}
