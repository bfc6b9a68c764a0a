package devcluster

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"github.com/gpuspace/gpuspace/internal/dev/controlplane"
	"github.com/gpuspace/gpuspace/manifests"
)

// SchedulerBinary is gpuspace-scheduler: kube-scheduler with gpuspace's
// plugins, built from ./cmd/gpuspace-scheduler.
var SchedulerBinary = controlplane.Binary{
	Name:    "gpuspace-scheduler",
	Package: "./cmd/gpuspace-scheduler",
	LDFlags: controlplane.KubeVersionLDFlags,
}

// schedulerConfig turns the shipped KubeSchedulerConfiguration into the
// local one: the same profile and plugin arguments, the local kubeconfig,
// and no leader election (there is one scheduler).
func schedulerConfig(kubeconfig string) ([]byte, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(manifests.SchedulerConfig, &cfg); err != nil {
		return nil, fmt.Errorf("parse manifests/scheduler/config.yaml: %w", err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": kubeconfig}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	return yaml.Marshal(cfg)
}

// startScheduler runs gpuspace-scheduler as a child of the control plane,
// serving no port of its own.
func startScheduler(cp *controlplane.ControlPlane, binDir string) error {
	b, err := schedulerConfig(cp.KubeconfigPath)
	if err != nil {
		return err
	}
	path := filepath.Join(cp.Dir, "scheduler-config.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write scheduler config: %w", err)
	}
	return cp.Spawn(SchedulerBinary.Name, filepath.Join(binDir, SchedulerBinary.Name),
		"--config="+path, "--secure-port=0", "--v=1")
}
