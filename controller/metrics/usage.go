package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// UsageSample is what one GPR has used on one node so far: the GPU-seconds
// it held there and, where its shape has a price, what they cost.
type UsageSample struct {
	GPR, Node, Workspace, Cluster, Shape string
	GPUSeconds                           float64
	CostUSD                              float64
	Priced                               bool
}

// usage reports gpuspace_gpu_seconds_total{workspace,cluster,shape} and
// gpuspace_gpr_cost_total{workspace} when scraped, from a source of
// samples (the GPR controller's cache, on the leader): each scrape adds to
// the counters what every GPR used since the last one, so they advance
// while GPRs run, with no write to any object. A GPR deleted keeps what it
// added; a restarted process counts again from the GPRs it finds.
type usage struct {
	mu      sync.Mutex
	source  func() []UsageSample
	setter  int                       // which SetUsageSource call set source
	counted map[[2]string]UsageSample // by GPR and node
	seconds *prometheus.CounterVec
	cost    *prometheus.CounterVec
}

var (
	// GPUSeconds is gpuspace_gpu_seconds_total: GPU-seconds held by GPRs,
	// by workspace, cluster and GPU shape. It advances when scraped.
	GPUSeconds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gpuspace",
		Name:      "gpu_seconds_total",
		Help:      "GPU-seconds held by GPU provision requests, by workspace, cluster and GPU shape.",
	}, []string{"workspace", "cluster", "shape"})
	// GPRCost is gpuspace_gpr_cost_total: what GPRs cost in USD, by
	// workspace. It advances when scraped.
	GPRCost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gpuspace",
		Name:      "gpr_cost_total",
		Help:      "What GPU provision requests cost, in USD (GPU-hours × the configured price of their shape), by workspace. Shapes without a price add nothing.",
	}, []string{"workspace"})

	usageMetrics = &usage{counted: map[[2]string]UsageSample{}, seconds: GPUSeconds, cost: GPRCost}
)

func init() { ctrlmetrics.Registry.MustRegister(usageMetrics) }

// SetUsageSource sets where the usage counters come from, until the
// returned unset is called (a replica that lost leadership), unless
// another source was set meanwhile (tests run several managers).
func SetUsageSource(f func() []UsageSample) (unset func()) {
	u := usageMetrics
	u.mu.Lock()
	defer u.mu.Unlock()
	u.setter++
	u.source = f
	id := u.setter
	return func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.setter == id {
			u.source = nil
		}
	}
}

// Describe implements prometheus.Collector.
func (u *usage) Describe(ch chan<- *prometheus.Desc) {
	u.seconds.Describe(ch)
	u.cost.Describe(ch)
}

// Collect implements prometheus.Collector: it adds what was used since the
// last scrape, then reports the counters.
func (u *usage) Collect(ch chan<- prometheus.Metric) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var samples []UsageSample
	if u.source != nil {
		samples = u.source()
	}
	if len(samples) > 0 { // none: nothing runs, or the cache failed to list
		seen := make(map[[2]string]bool, len(u.counted))
		for _, s := range samples {
			key := [2]string{s.GPR, s.Node}
			seen[key] = true
			before := u.counted[key]
			if d := s.GPUSeconds - before.GPUSeconds; d > 0 {
				u.seconds.WithLabelValues(s.Workspace, s.Cluster, s.Shape).Add(d)
			}
			if d := s.CostUSD - before.CostUSD; s.Priced && d > 0 {
				u.cost.WithLabelValues(s.Workspace).Add(d)
			}
			u.counted[key] = s
		}
		for key := range u.counted {
			if !seen[key] {
				delete(u.counted, key)
			}
		}
	}
	u.seconds.Collect(ch)
	u.cost.Collect(ch)
}
