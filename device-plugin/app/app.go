package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gpuspace/gpuspace/device-plugin/health"
	"github.com/gpuspace/gpuspace/device-plugin/labels"
	"github.com/gpuspace/gpuspace/device-plugin/nvml"
	"github.com/gpuspace/gpuspace/device-plugin/plugin"
	"github.com/gpuspace/gpuspace/device-plugin/utilization"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
	"github.com/gpuspace/gpuspace/internal/util/logging"
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
	lib, _, err := openNVML(cfg)
	return lib, err
}

// openNVML is OpenNVML that also returns the mock server, if it is one.
func openNVML(cfg *Config) (nvml.Lib, *nvml.Mock, error) {
	var lib nvml.Lib
	var mock *nvml.Mock
	if server, ok := strings.CutPrefix(cfg.NVML, "mock:"); ok {
		m, err := nvml.NewMock(server)
		if err != nil {
			return nil, nil, err
		}
		lib, mock = m.Lib(), m
	} else {
		lib = nvml.NewReal()
	}
	if err := lib.Init(); err != nil {
		if errors.Is(err, nvml.ErrLibraryNotFound) {
			return nil, nil, fmt.Errorf("%w: is the NVIDIA driver installed on this node, and does the container runtime "+
				"(NVIDIA container toolkit, runtimeClass nvidia) expose it to this container? "+
				"Without a GPU, run with --nvml=mock:<server> (NVML=mock:dgxh100)", err)
		}
		return nil, nil, err
	}
	return lib, mock, nil
}

// Run runs the plugin until ctx ends, or prints the inventory to out and
// returns when cfg.PrintInventory. It makes the process's logger (and
// routes klog through it), so it is for main, once.
func Run(ctx context.Context, cfg *Config, out io.Writer) error {
	_, log, err := logging.New(logging.Options{Format: cfg.LogFormat, Level: cfg.LogLevel})
	if err != nil {
		return err
	}
	lib, mock, err := openNVML(cfg)
	if err != nil {
		return err
	}
	defer lib.Shutdown()
	cfg.mock = mock
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
			kube = nil
			log.Info("no Kubernetes API access; GPU health events are only logged, idleness not published", "err", err.Error())
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

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.UtilizationInterval > 0 {
		ucfg := utilization.Config{
			Node:             cfg.NodeName,
			Interval:         cfg.UtilizationInterval,
			ThresholdPercent: uint32(cfg.IdleThreshold),
			Recorder:         recorder,
			Metrics:          utilization.NewMetrics(reg),
			Log:              log.WithName("utilization"),
		}
		switch {
		case !cfg.IdleSignal:
		case kube == nil || cfg.NodeName == "":
			log.Info("idle signal not published: it needs --node-name and API access", "annotation", idlesignal.Annotation)
		default:
			every := cfg.UtilizationPublishInterval
			if every == 0 {
				every = -1 // never alone
			}
			ucfg.Publisher = &idlesignal.Publisher{Client: kube, Node: cfg.NodeName, FieldManager: labels.FieldManager,
				UtilizationInterval: every}
		}
		if cfg.mock != nil {
			// A mock GPU is busy while the kubelet has it assigned.
			ucfg.BeforeSample = utilization.MockFollowsKubelet(cfg.mock, gpus,
				utilization.PodResourcesSocket(cfg.KubeletSocketDir), log.WithName("utilization"))
		}
		sampler := utilization.New(lib, gpus, ucfg)
		wg.Go(func() { sampler.Run(ctx) })
	}
	if addr := cfg.MetricsAddr; addr != "" && addr != "off" {
		wg.Go(func() { serveMetrics(ctx, addr, reg, log.WithName("metrics")) })
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

// serveMetrics serves /metrics on addr until ctx ends. A port it cannot
// listen on is logged, not fatal: the kubelet still gets its GPUs.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log logr.Logger) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error(err, "metrics endpoint not served", "addr", addr)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error(err, "metrics endpoint stopped")
	}
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
	GPUs      []InventoryGPU    `json:"gpus"`
	Labels    map[string]string `json:"labels"`
	Resources map[string]int    `json:"resources"`
}

// InventoryGPU is a GPU in the JSON inventory: what NVML reports of it
// and how it is used now.
type InventoryGPU struct {
	nvml.GPU
	// Usage is how the GPU is used now; absent when it could not be read.
	Usage *nvml.Usage `json:"usage,omitempty"`
	// UsageError says why the usage could not be read.
	UsageError string `json:"usageError,omitempty"`
	// Idle is whether the GPU counts as idle under --idle-threshold.
	Idle bool `json:"idle"`
}

// PrintInventory writes the GPUs as nvidia-smi's
// --query-gpu=index,name,uuid,memory.total,pci.bus_id,utilization.gpu
// --format=csv does, so the two can be diffed, or as JSON with usage,
// labels and resources.
func PrintInventory(out io.Writer, cfg *Config, lib nvml.Lib, gpus []nvml.GPU) error {
	readings := utilization.Read(lib, gpus, uint32(cfg.IdleThreshold))
	if cfg.InventoryFormat == "json" {
		driver, err := lib.DriverVersion()
		if err != nil {
			return err
		}
		inv := Inventory{NVML: cfg.NVML, Driver: driver, GPUs: []InventoryGPU{}, Labels: labels.For(gpus),
			Resources: map[string]int{cfg.ResourceName: len(gpus)}}
		for _, r := range readings {
			g := InventoryGPU{GPU: r.GPU, Idle: r.Idle}
			if r.Err != nil {
				g.UsageError = r.Err.Error()
			} else {
				g.Usage = &r.Usage
			}
			inv.GPUs = append(inv.GPUs, g)
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
	sb.WriteString("index, name, uuid, memory.total [MiB], pci.bus_id, utilization.gpu [%]\n")
	for _, r := range readings {
		g := r.GPU
		fmt.Fprintf(&sb, "%d, %s, %s, %d MiB, %s, %s\n", g.Index, g.Name, g.UUID, g.MemoryMiB, strings.ToUpper(g.PCIBusID), smiUtilization(r))
	}
	_, err := io.WriteString(out, sb.String())
	return err
}

// smiUtilization is utilization.gpu as nvidia-smi --format=csv prints it:
// "37 %", "[N/A]" where the GPU does not report it (MIG mode), "[Unknown
// Error]" where reading failed.
func smiUtilization(r utilization.Reading) string {
	switch {
	case r.Err != nil:
		return "[Unknown Error]"
	case !r.Usage.UtilizationSupported:
		return "[N/A]"
	}
	return fmt.Sprintf("%d %%", r.Usage.GPUPercent)
}
