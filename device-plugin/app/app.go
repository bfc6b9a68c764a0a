package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gpuspace/gpuspace/device-plugin/health"
	"github.com/gpuspace/gpuspace/device-plugin/labels"
	"github.com/gpuspace/gpuspace/device-plugin/nvml"
	"github.com/gpuspace/gpuspace/device-plugin/plugin"
	"github.com/gpuspace/gpuspace/internal/logging"
)

// Socket names in the kubelet's device plugin directory.
const (
	GPUSocket       = "gpuspace-gpu.sock"
	GPUMemorySocket = "gpuspace-gpu-memory.sock"
)

// Main runs the device plugin with the process's arguments and
// environment, and returns the exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := ParseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpuspace-device-plugin:", err)
		return 2
	}
	if err := Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gpuspace-device-plugin:", err)
		return 1
	}
	return 0
}

// OpenNVML returns the Lib cfg asks for, initialised. A node without the
// NVIDIA driver gets an error that says what to check.
func OpenNVML(cfg *Config) (nvml.Lib, error) {
	var lib nvml.Lib
	if server, ok := strings.CutPrefix(cfg.NVML, "mock:"); ok {
		m, err := nvml.NewMock(server)
		if err != nil {
			return nil, err
		}
		lib = m.Lib()
	} else {
		lib = nvml.NewReal()
	}
	if err := lib.Init(); err != nil {
		if errors.Is(err, nvml.ErrLibraryNotFound) {
			return nil, fmt.Errorf("%w: is the NVIDIA driver installed on this node, and does the container runtime "+
				"(NVIDIA container toolkit, runtimeClass nvidia) expose it to this container? "+
				"Without a GPU, run with --nvml=mock:<server> (NVML=mock:dgxh100)", err)
		}
		return nil, err
	}
	return lib, nil
}

// Run runs the plugin until ctx ends, or prints the inventory to out and
// returns when cfg.PrintInventory. It makes the process's logger (and
// routes klog through it), so it is for main, once.
func Run(ctx context.Context, cfg *Config, out io.Writer) error {
	_, log, err := logging.New(logging.Options{Format: cfg.LogFormat, Level: cfg.LogLevel})
	if err != nil {
		return err
	}
	lib, err := OpenNVML(cfg)
	if err != nil {
		return err
	}
	defer lib.Shutdown()
	return RunWithNVML(ctx, cfg, lib, log, out)
}

// RunWithNVML is Run over an initialised Lib, such as a mock a test keeps
// a handle on to inject events, logging to log and touching no process
// globals.
func RunWithNVML(ctx context.Context, cfg *Config, lib nvml.Lib, log logr.Logger, out io.Writer) error {
	gpus, err := lib.GPUs()
	if err != nil {
		return fmt.Errorf("list GPUs: %w", err)
	}
	if cfg.PrintInventory {
		return PrintInventory(out, cfg, lib, gpus)
	}
	driver, _ := lib.DriverVersion()
	log.Info("NVML ready", "nvml", cfg.NVML, "driver", driver, "gpus", len(gpus))
	if len(gpus) == 0 {
		log.Info("no GPUs on this node; advertising none")
	}

	var kube kubernetes.Interface
	var recorder health.Recorder
	if cfg.Labels || cfg.NodeName != "" {
		kube, err = kubeClient(cfg.Kubeconfig)
		if err != nil && cfg.Labels {
			return err
		}
		if err != nil {
			log.Info("no Kubernetes API access; GPU health events are only logged", "err", err.Error())
		} else if cfg.NodeName != "" {
			rec, stopEvents := health.NewNodeRecorder(kube, cfg.NodeName)
			defer stopEvents()
			recorder = rec
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var source plugin.HealthSource = plugin.AllHealthy{}
	if cfg.HealthChecks {
		uuids := make([]string, len(gpus))
		for i, g := range gpus {
			uuids[i] = g.UUID
		}
		mon := health.NewMonitor(lib, uuids, health.Config{
			IgnoredXIDs:   cfg.ignoredXIDs,
			FatalXIDs:     cfg.fatalXIDs,
			ProbeInterval: cfg.ProbeInterval,
			RecoverAfter:  cfg.RecoverAfter,
			Recorder:      recorder,
			Log:           log.WithName("health"),
		})
		wg.Go(func() { mon.Run(ctx) })
		source = mon
	}

	servers := []*plugin.Server{plugin.NewServer(plugin.NewGPUs(cfg.ResourceName, gpus), source,
		cfg.KubeletSocketDir, GPUSocket, log.WithName("plugin"))}
	if cfg.GPUMemory {
		servers = append(servers, plugin.NewServer(plugin.NewMemory(cfg.GPUMemoryResource, gpus), source,
			cfg.KubeletSocketDir, GPUMemorySocket, log.WithName("plugin")))
	}
	if cfg.Labels {
		l := &labels.Labeler{Client: kube, Node: cfg.NodeName, Log: log.WithName("labels")}
		wg.Go(func() { l.Run(ctx, gpus, cfg.LabelInterval, 0) })
	}
	mgr := plugin.NewManager(cfg.KubeletSocketDir, cfg.KubeletPoll, log.WithName("kubelet"), servers...)
	err = mgr.Run(ctx)
	log.Info("stopped; sockets removed")
	return err
}

func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var rc *rest.Config
	var err error
	if kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration (--kubeconfig, or in-cluster): %w", err)
	}
	rc.UserAgent = "gpuspace-device-plugin"
	return kubernetes.NewForConfig(rc)
}

// Inventory is what --print-inventory --inventory-format=json prints.
type Inventory struct {
	NVML      string            `json:"nvml"`
	Driver    string            `json:"driverVersion"`
	GPUs      []nvml.GPU        `json:"gpus"`
	Labels    map[string]string `json:"labels"`
	Resources map[string]int    `json:"resources"`
}

// PrintInventory writes the GPUs as nvidia-smi's
// --query-gpu=index,name,uuid,memory.total,pci.bus_id --format=csv does,
// so the two can be diffed, or as JSON with labels and resources.
func PrintInventory(out io.Writer, cfg *Config, lib nvml.Lib, gpus []nvml.GPU) error {
	if cfg.InventoryFormat == "json" {
		driver, err := lib.DriverVersion()
		if err != nil {
			return err
		}
		inv := Inventory{NVML: cfg.NVML, Driver: driver, GPUs: gpus, Labels: labels.For(gpus),
			Resources: map[string]int{cfg.ResourceName: len(gpus)}}
		if inv.GPUs == nil {
			inv.GPUs = []nvml.GPU{}
		}
		if cfg.GPUMemory {
			units := 0
			for _, g := range gpus {
				units += plugin.UnitsOf(g)
			}
			inv.Resources[cfg.GPUMemoryResource] = units
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(inv)
	}
	var sb strings.Builder
	sb.WriteString("index, name, uuid, memory.total [MiB], pci.bus_id\n")
	for _, g := range gpus {
		fmt.Fprintf(&sb, "%d, %s, %s, %d MiB, %s\n", g.Index, g.Name, g.UUID, g.MemoryMiB, strings.ToUpper(g.PCIBusID))
	}
	_, err := io.WriteString(out, sb.String())
	return err
}
