// Command gpuspace is the gpuspace control plane: the REST API, MCP, the
// controllers, and the local development system.
package main

import (
	"os"

	"github.com/gpuspace/gpuspace/internal/cli"
)

func main() {
	if err := cli.NewRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
