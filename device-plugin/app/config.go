// Package app is gpuspace-device-plugin's command line: flags mirrored by
// environment variables, and the wiring of NVML, health, the kubelet
// servers and node labels. cmd/gpuspace-device-plugin only calls Main.
package app

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/device-plugin/health"
	"github.com/gpuspace/gpuspace/device-plugin/nvml"
	"github.com/gpuspace/gpuspace/device-plugin/plugin"
	"github.com/gpuspace/gpuspace/device-plugin/utilization"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

// Config is everything the flags set.
type Config struct {
	// NVML is "real" or "mock:<server>".
	NVML              string
	ResourceName      string
	GPUMemory         bool
	GPUMemoryResource string
	NodeName          string
	KubeletSocketDir  string
	Kubeconfig        string
	HealthChecks      bool
	XIDIgnore         string
	XIDFatal          string
	ProbeInterval     time.Duration
	RecoverAfter      int
	Labels            bool
	LabelInterval     time.Duration
	KubeletPoll       time.Duration
	LogFormat         string
	LogLevel          string
	PrintInventory    bool
	InventoryFormat   string
	// UtilizationInterval is how often GPU use is sampled; 0 turns
	// measurement off.
	UtilizationInterval time.Duration
	// IdleThreshold is the utilisation, in percent, under which a GPU
	// without compute processes is idle.
	IdleThreshold uint
	// IdleSignal publishes the node's idle-since annotation.
	IdleSignal bool
	// UtilizationPublishInterval is the least time between writes of the
	// node's utilisation annotation alone; 0: only with idle transitions.
	UtilizationPublishInterval time.Duration
	// MetricsAddr is where /metrics is served; "" serves none.
	MetricsAddr string
	// mock is the mock server behind --nvml=mock:<server>, set by Run.
	mock               *nvml.Mock
	ignoredXIDs        []uint64
	fatalXIDs          []uint64
	explicitlySetFlags map[string]bool
}

// EnvName is the environment variable that mirrors a flag:
// --kubelet-socket-dir is KUBELET_SOCKET_DIR.
func EnvName(flagName string) string {
	return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ParseConfig parses args (without the program name); a flag not on the
// command line takes its value from its environment variable (getenv),
// then its default. Command-line flags win over the environment.
func ParseConfig(args []string, getenv func(string) string, usageOut io.Writer) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("gpuspace-device-plugin", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.Usage = func() {
		fmt.Fprint(usageOut, "Usage: gpuspace-device-plugin [flags]\n\n"+
			"Every flag can also be set by an environment variable: its name in upper case with _ for -\n"+
			"(--kubelet-socket-dir is KUBELET_SOCKET_DIR). A flag on the command line wins.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.NVML, "nvml", "real", `NVML to use: "real" (libnvidia-ml.so.1) or "mock:<server>" with server one of dgxa100, dgxh100, dgxh200, dgxb200, t4x<N>, mixed`)
	fs.StringVar(&c.ResourceName, "resource-name", v1alpha1.ResourceGPU, "extended resource name of whole GPUs")
	fs.BoolVar(&c.GPUMemory, "gpu-memory", true, "also advertise GPU memory in GiB units")
	fs.StringVar(&c.GPUMemoryResource, "gpu-memory-resource-name", v1alpha1.ResourceGPUMemory, "extended resource name of GPU memory")
	fs.StringVar(&c.NodeName, "node-name", "", "name of this node (for labels and events; from the downward API)")
	fs.StringVar(&c.KubeletSocketDir, "kubelet-socket-dir", plugin.DefaultDir, "the kubelet's device plugin directory")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file; empty: in-cluster configuration")
	fs.BoolVar(&c.HealthChecks, "health-checks", true, "watch NVML events and re-probe GPUs; off: every GPU is always healthy")
	fs.StringVar(&c.XIDIgnore, "xid-ignore", joinXIDs(health.DefaultIgnoredXIDs), "comma-separated XIDs that do not make a GPU unhealthy (application errors); \"none\" for none")
	fs.StringVar(&c.XIDFatal, "xid-fatal", "", "comma-separated XIDs after which a GPU never recovers, besides 48 and 79 (e.g. 95 on GPUs that need a reset after uncontained ECC errors)")
	fs.DurationVar(&c.ProbeInterval, "health-probe-interval", 5*time.Second, "how often NVML and unhealthy GPUs are re-probed")
	fs.IntVar(&c.RecoverAfter, "health-recover-after", 3, "clean probes in a row after which an unhealthy GPU is healthy again (never after XID 48 or 79)")
	fs.BoolVar(&c.Labels, "labels", true, "publish the node's GPU labels (needs --node-name and API access)")
	fs.DurationVar(&c.LabelInterval, "label-interval", 10*time.Minute, "how often the labels are re-applied")
	fs.DurationVar(&c.KubeletPoll, "kubelet-poll-interval", time.Second, "how often kubelet.sock is checked for a kubelet restart")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.PrintInventory, "print-inventory", false, "print the GPUs NVML reports and exit (compare with nvidia-smi)")
	fs.StringVar(&c.InventoryFormat, "inventory-format", "csv", `--print-inventory output: "csv" (the columns of nvidia-smi --query-gpu=index,name,uuid,memory.total,pci.bus_id,utilization.gpu --format=csv) or "json" (everything, with labels and resources)`)
	fs.DurationVar(&c.UtilizationInterval, "utilization-interval", utilization.DefaultInterval, "how often each GPU's utilisation and compute processes are read from NVML, for idle detection and metrics; 0 turns measurement off")
	fs.UintVar(&c.IdleThreshold, "idle-threshold", v1alpha1.DefaultIdleThresholdPercent, "utilisation in percent (1-100) under which a GPU with no compute process is idle")
	fs.BoolVar(&c.IdleSignal, "idle-signal", true, "publish when all the node's GPUs became idle as the Node annotation "+v1alpha1.AnnotationGPUsIdleSince+", written only when the node turns idle or busy (needs --node-name and API access)")
	fs.DurationVar(&c.UtilizationPublishInterval, "utilization-publish-interval", idlesignal.DefaultUtilizationInterval, "with --idle-signal, the least time between writes of the Node annotation "+v1alpha1.AnnotationGPUUtilization+" (mean GPU utilisation, for display) made for it alone, and only when it moved by 10 points; 0: written only with idle/busy transitions")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", ":9400", `address of the Prometheus /metrics endpoint (per-GPU utilisation, memory used, compute processes); "" or "off" serves none`)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.explicitlySetFlags = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.explicitlySetFlags[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || c.explicitlySetFlags[f.Name] {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment %s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	if c.NVML != "real" && !strings.HasPrefix(c.NVML, "mock:") {
		return fmt.Errorf(`--nvml=%q: want "real" or "mock:<server>"`, c.NVML)
	}
	xids, err := health.ParseXIDs(c.XIDIgnore)
	if err != nil {
		return fmt.Errorf("--xid-ignore: %w", err)
	}
	c.ignoredXIDs = xids
	if c.fatalXIDs, err = health.ParseXIDs(c.XIDFatal); err != nil {
		return fmt.Errorf("--xid-fatal: %w", err)
	}
	if c.ResourceName == "" || (c.GPUMemory && (c.GPUMemoryResource == "" || c.GPUMemoryResource == c.ResourceName)) {
		return fmt.Errorf("resource names must be set and differ: %q, %q", c.ResourceName, c.GPUMemoryResource)
	}
	if c.Labels && c.NodeName == "" && !c.PrintInventory {
		return fmt.Errorf("--labels needs --node-name (NODE_NAME); pass --labels=false to run without labels")
	}
	if c.InventoryFormat != "csv" && c.InventoryFormat != "json" {
		return fmt.Errorf("--inventory-format=%q: want csv or json", c.InventoryFormat)
	}
	if c.IdleThreshold < 1 || c.IdleThreshold > 100 {
		return fmt.Errorf("--idle-threshold=%d: want a percentage from 1 to 100", c.IdleThreshold)
	}
	if c.UtilizationInterval < 0 || c.UtilizationPublishInterval < 0 {
		return fmt.Errorf("--utilization-interval and --utilization-publish-interval must not be negative")
	}
	if c.RecoverAfter < 1 || c.ProbeInterval <= 0 {
		return fmt.Errorf("--health-recover-after and --health-probe-interval must be positive")
	}
	return nil
}

func joinXIDs(xids []uint64) string {
	s := make([]string, len(xids))
	for i, x := range xids {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}
