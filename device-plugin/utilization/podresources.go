package utilization

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/gpuspace/gpuspace/device-plugin/nvml"
)

// PodResourcesSocket is the kubelet's pod-resources socket under the
// kubelet's root directory, given its device plugin directory
// (/var/lib/kubelet/device-plugins → /var/lib/kubelet/pod-resources/kubelet.sock).
func PodResourcesSocket(devicePluginDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(devicePluginDir)), "pod-resources", "kubelet.sock")
}

// memoryUnit is a GPU memory device ID, "<uuid>-<k>".
var memoryUnit = regexp.MustCompile(`^(.+)-[0-9]+$`)

// AllocatedGPUs asks the kubelet's pod-resources API which of gpus are
// assigned to running containers, by whole GPU or by memory unit.
func AllocatedGPUs(ctx context.Context, socket string, gpus []nvml.GPU) (map[string]bool, error) {
	known := make(map[string]bool, len(gpus))
	for _, g := range gpus {
		known[g.UUID] = true
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := podresourcesv1.NewPodResourcesListerClient(conn).List(ctx, &podresourcesv1.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list pod resources at %s: %w", socket, err)
	}
	out := map[string]bool{}
	for _, p := range resp.GetPodResources() {
		for _, c := range p.GetContainers() {
			for _, d := range c.GetDevices() {
				for _, id := range d.GetDeviceIds() {
					if !known[id] {
						if m := memoryUnit.FindStringSubmatch(id); m != nil {
							id = m[1]
						}
					}
					if known[id] {
						out[id] = true
					}
				}
			}
		}
	}
	return out, nil
}

// MockFollowsKubelet makes a mock NVML's GPUs run a compute process while
// the kubelet has them assigned to a container, so that a simulated node
// (kind, make e2e-node) is busy while GPU pods run on it. It returns a
// Config.BeforeSample hook. A kubelet it cannot reach leaves the GPUs as
// they are, logged once.
func MockFollowsKubelet(m *nvml.Mock, gpus []nvml.GPU, socket string, log logr.Logger) func(context.Context) {
	failing := false
	return func(ctx context.Context) {
		busy, err := AllocatedGPUs(ctx, socket, gpus)
		if err != nil {
			if !failing {
				log.Info("mock GPUs do not follow the kubelet's allocations", "err", err.Error())
			}
			failing = true
			return
		}
		if failing {
			log.Info("mock GPUs follow the kubelet's allocations again")
		}
		failing = false
		for _, g := range gpus {
			if busy[g.UUID] {
				m.SetProcesses(g.UUID, 4242)
			} else {
				m.SetProcesses(g.UUID)
			}
		}
	}
}
