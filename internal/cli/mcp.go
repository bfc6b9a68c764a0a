package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gpuspace/gpuspace/mcp"
)

func newMCPCommand() *cobra.Command {
	var (
		cfg       mcp.StdioConfig
		logLevel  string
		logStderr bool
	)
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve gpuspace's MCP tools on stdio, for MCP clients that start a command",
		Long: `mcp speaks MCP on stdin/stdout and forwards every tool call to the gpuspace
REST API at --server, so an agent gets exactly the tools, checks and errors
the API has. Credentials come from the environment:

  GPUSPACE_API_KEY  an API key, exchanged for bearer tokens as needed, or
  GPUSPACE_TOKEN    a bearer token from POST /api/v1/auth, used as is.

tools/list shows only the tools the key's role may call.`,
		Example: `  GPUSPACE_API_KEY=$(cat .gpuspace/dev/owner-api-key) gpuspace mcp --server http://127.0.0.1:8080`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd.Flags()) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg = mcp.StdioConfigFromEnv(cfg)
			cfg.Version = Version
			if logStderr {
				// stdout carries the protocol: logs go to stderr only.
				zc := zap.NewProductionConfig()
				zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
				if lvl, err := zap.ParseAtomicLevel(logLevel); err == nil {
					zc.Level = lvl
				}
				zl, err := zc.Build()
				if err != nil {
					return err
				}
				defer zl.Sync() //nolint:errcheck // best effort at exit
				cfg.Logger = zl
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return mcp.ServeStdio(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ServerURL, "server", "http://127.0.0.1:8080", "URL of the gpuspace REST API")
	f.BoolVar(&cfg.ReadOnly, "read-only", false, "offer only tools that change nothing")
	f.BoolVar(&cfg.DisableDestructive, "disable-destructive", false, "hide tools that delete or release")
	f.BoolVar(&logStderr, "log", false, "log to stderr")
	f.StringVar(&logLevel, "log-level", "info", "log level with --log")
	return cmd
}
