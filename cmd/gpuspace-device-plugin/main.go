// Command gpuspace-device-plugin advertises a node's GPUs and GPU memory to
// the kubelet, keeps their health current and labels the node with its GPU
// model. Flags and their environment variables: gpuspace-device-plugin -h.
package main

import (
	"os"

	"github.com/gpuspace/gpuspace/device-plugin/app"
)

func main() {
	os.Exit(app.Main())
}
