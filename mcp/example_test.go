package mcp_test

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"k8s.io/client-go/rest"

	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/mcp"
)

// `gpuspace serve`: MCP at /mcp on the API's own listener, so it shares
// the API's panic recovery, logging and envelope 404s.
func ExampleServer_HTTPHandler() {
	var cfg *rest.Config // the control plane's
	log := zap.NewExample()
	api, err := apiserver.New(apiserver.Config{RESTConfig: cfg}, apiserver.WithLogger(log.Named("api")))
	if err != nil {
		log.Fatal("API", zap.Error(err))
	}
	srv, err := mcp.NewServer(api,
		mcp.WithLogger(log.Named("mcp")),
		mcp.WithVersion("v0.1.0"),
		mcp.WithReadOnly(false),           // --mcp-read-only
		mcp.WithDisableDestructive(false), // --mcp-disable-destructive
	)
	if err != nil {
		log.Fatal("MCP", zap.Error(err))
	}
	api.Mux().Handle("/mcp", srv.HTTPHandler())
	// ... start api and serve api.Handler() as before.
}

// `gpuspace mcp --server http://127.0.0.1:8080 [--read-only]
// [--disable-destructive]`, credentials from GPUSPACE_API_KEY or
// GPUSPACE_TOKEN. Logs go to stderr: stdout is the protocol's.
func ExampleServeStdio() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log, _ := zap.NewProduction() // writes to stderr
	err := mcp.ServeStdio(ctx, mcp.StdioConfigFromEnv(mcp.StdioConfig{
		ServerURL:          "http://127.0.0.1:8080", // --server
		ReadOnly:           false,                   // --read-only
		DisableDestructive: false,                   // --disable-destructive
		Logger:             log,
		Version:            "v0.1.0",
	}))
	if err != nil {
		log.Fatal("gpuspace mcp", zap.Error(err))
	}
}
