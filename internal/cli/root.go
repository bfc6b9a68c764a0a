// Package cli holds the gpuspace command line: one cobra command per
// subcommand, each a thin layer over a package that does the work.
package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Version is stamped by the Makefile (-X .../internal/cli.Version=...).
var Version = "dev"

// NewRootCommand returns the gpuspace command and its subcommands.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "gpuspace",
		Short:         "gpuspace: an elastic GPU service for Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(newVersionCommand(), newDevCommand(), newServeCommand(), newAPIKeyCommand(), newClusterCommand(), newMCPCommand(), newOpenAPICommand())
	groupCommands(root)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the gpuspace version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "gpuspace", Version)
		},
	}
}

// bindEnv makes every flag of fs settable by an environment variable
// GPUSPACE_<FLAG> (dashes become underscores), unless given on the command
// line. It runs before the command, so flag validation sees the values.
func bindEnv(fs *pflag.FlagSet) error {
	var firstErr error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil {
			return
		}
		name := "GPUSPACE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				firstErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	return firstErr
}
