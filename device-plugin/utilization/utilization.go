// Package utilization measures how a node's GPUs are used, for idle
// release of GPRs and for Prometheus.
//
// Every interval the Sampler reads each GPU from NVML (Lib.Usage:
// utilisation rates, memory used, running compute processes). A GPU is
// idle when its utilisation is under the threshold and it runs no compute
// process; where it reports no utilisation (MIG mode) the process check
// alone decides. A GPU NVML cannot read is never idle: the error is logged,
// counted and recorded as a Warning event on the Node. The node is idle
// since the moment the last of its GPUs became idle (idlesignal.Tracker),
// and that is published on the Node by idlesignal.Publisher, which writes
// only when the node turns idle or busy — never once per sample.
package utilization

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/device-plugin/health"
	"github.com/gpuspace/gpuspace/device-plugin/nvml"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

// Defaults of Config.
const (
	DefaultInterval = 15 * time.Second
	// DefaultResync is how often the published annotation is read back, to
	// notice someone removing or changing it.
	DefaultResync = 10 * time.Minute
)

// Event reasons recorded on the Node.
const (
	ReasonUnavailable = "GPUUtilizationUnavailable"
	ReasonAvailable   = "GPUUtilizationAvailable"
	ReasonIdle        = "GPUsIdle"
	ReasonBusy        = "GPUsBusy"
)

// Config tunes a Sampler. Zero values mean the defaults.
type Config struct {
	// Node is the node's name, for metric labels.
	Node string
	// Interval between samples (DefaultInterval).
	Interval time.Duration
	// ThresholdPercent: a GPU under this utilisation, with no compute
	// process, is idle (v1alpha1.DefaultIdleThresholdPercent).
	ThresholdPercent uint32
	// Timeout bounds one round of reads; a round that takes longer (a
	// hung driver) counts every GPU as unreadable (default: Interval,
	// at most 10s).
	Timeout time.Duration
	// Resync is how often the publisher re-reads the node (DefaultResync).
	Resync time.Duration
	// Publisher publishes the node's idle-since; nil publishes nothing.
	Publisher *idlesignal.Publisher
	// Recorder records events on the Node; nil records none.
	Recorder health.Recorder
	// Metrics receives the gauges; nil keeps none.
	Metrics *Metrics
	Log     logr.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
	// BeforeSample, when set, runs before each sample (a mock NVML
	// following the kubelet: MockFollowsKubelet).
	BeforeSample func(context.Context)
}

// Reading is one GPU in one sample.
type Reading struct {
	GPU   nvml.GPU
	Usage nvml.Usage
	// Err is why the GPU could not be read; it is then not idle.
	Err  error
	Idle bool
}

// Sample is one round of readings.
type Sample struct {
	At       time.Time
	Readings []Reading
	// IdleSince is when the last of the node's GPUs became idle, zero while
	// any is busy or unreadable.
	IdleSince time.Time
	// MeanPercent is the mean utilisation of the GPUs that report one, or
	// idlesignal.NoUtilization.
	MeanPercent int
	// Published reports that this sample wrote the idle annotation.
	Published bool
}

// Idle reports whether a GPU reading u is idle under thresholdPercent.
func Idle(u nvml.Usage, thresholdPercent uint32) bool {
	return u.ComputeProcesses == 0 && (!u.UtilizationSupported || u.GPUPercent < thresholdPercent)
}

// Sampler samples a fixed set of GPUs.
type Sampler struct {
	lib  nvml.Lib
	gpus []nvml.GPU
	cfg  Config

	mu         sync.Mutex // one sample at a time
	tracker    idlesignal.Tracker
	failing    map[string]bool // GPUs whose last read failed
	inflight   chan struct{}   // closed when a timed-out round of reads returns
	lastIdle   *bool           // the node's idle-ness at the last published write
	lastResync time.Time
}

// New returns a Sampler of gpus over lib.
func New(lib nvml.Lib, gpus []nvml.GPU, cfg Config) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.ThresholdPercent == 0 {
		cfg.ThresholdPercent = v1alpha1.DefaultIdleThresholdPercent
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = min(cfg.Interval, 10*time.Second)
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Publisher != nil && cfg.Publisher.Now == nil {
		cfg.Publisher.Now = cfg.Now
	}
	return &Sampler{lib: lib, gpus: gpus, cfg: cfg, failing: map[string]bool{}}
}

// MeanPercent is the mean utilisation, rounded, of the readings that have
// one, or idlesignal.NoUtilization when none has.
func MeanPercent(readings []Reading) int {
	sum, n := 0, 0
	for _, r := range readings {
		if r.Err == nil && r.Usage.UtilizationSupported {
			sum += int(r.Usage.GPUPercent)
			n++
		}
	}
	if n == 0 {
		return idlesignal.NoUtilization
	}
	return (sum + n/2) / n
}

// Read reads every GPU once, with no bookkeeping: what --print-inventory
// shows.
func Read(lib nvml.Lib, gpus []nvml.GPU, thresholdPercent uint32) []Reading {
	out := make([]Reading, len(gpus))
	for i, g := range gpus {
		u, err := lib.Usage(g.UUID)
		out[i] = Reading{GPU: g, Usage: u, Err: err, Idle: err == nil && Idle(u, thresholdPercent)}
	}
	return out
}

// read is Read bounded by the timeout: a hung NVML makes every GPU
// unreadable, and no new round starts while the hung one has not returned.
func (s *Sampler) read() []Reading {
	if s.inflight != nil {
		select {
		case <-s.inflight:
			s.inflight = nil
		default:
			return s.unreadable(fmt.Errorf("NVML has not answered the previous round of reads"))
		}
	}
	done := make(chan struct{})
	var readings []Reading
	go func() {
		defer close(done)
		readings = Read(s.lib, s.gpus, s.cfg.ThresholdPercent)
	}()
	t := time.NewTimer(s.cfg.Timeout)
	defer t.Stop()
	select {
	case <-done:
		return readings
	case <-t.C:
		s.inflight = done
		return s.unreadable(fmt.Errorf("NVML did not answer within %s", s.cfg.Timeout))
	}
}

func (s *Sampler) unreadable(err error) []Reading {
	out := make([]Reading, len(s.gpus))
	for i, g := range s.gpus {
		out[i] = Reading{GPU: g, Err: err}
	}
	return out
}

// SampleOnce reads every GPU, updates the metrics, records events for GPUs
// turning unreadable or readable again, and publishes the node's idle-since
// when it turned idle or busy.
func (s *Sampler) SampleOnce(ctx context.Context) Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.BeforeSample != nil {
		s.cfg.BeforeSample(ctx)
	}
	readings := s.read()
	now := s.cfg.Now()
	idle := make(map[string]bool, len(readings))
	for _, r := range readings {
		idle[r.GPU.UUID] = r.Idle
		s.noteErrors(r)
		s.cfg.Metrics.observe(s.cfg.Node, r)
	}
	since := s.tracker.Observe(now, idle)
	s.cfg.Metrics.observeNode(s.cfg.Node, since)
	sample := Sample{At: now, Readings: readings, IdleSince: since, MeanPercent: MeanPercent(readings)}
	if p := s.cfg.Publisher; p != nil {
		if now.Sub(s.lastResync) >= s.cfg.Resync {
			if !s.lastResync.IsZero() {
				p.Forget()
			}
			s.lastResync = now
		}
		wrote, err := p.PublishUsage(ctx, since, sample.MeanPercent)
		if err != nil && ctx.Err() == nil {
			s.cfg.Log.Error(err, "idle signal not published; retrying at the next sample")
		}
		if wrote {
			sample.Published = true
			s.cfg.Metrics.wrote(s.cfg.Node)
			s.notePublished(since, len(readings))
		}
	}
	return sample
}

func (s *Sampler) noteErrors(r Reading) {
	uuid := r.GPU.UUID
	switch {
	case r.Err != nil && !s.failing[uuid]:
		s.failing[uuid] = true
		msg := fmt.Sprintf("GPU %d (%s): cannot read utilisation and compute processes, counted as busy: %v", r.GPU.Index, uuid, r.Err)
		s.cfg.Log.Error(r.Err, "GPU utilisation unavailable; counted as busy", "gpu", r.GPU.Index, "uuid", uuid)
		s.event(health.EventWarning, ReasonUnavailable, msg)
	case r.Err == nil && s.failing[uuid]:
		delete(s.failing, uuid)
		s.cfg.Log.Info("GPU utilisation readable again", "gpu", r.GPU.Index, "uuid", uuid)
		s.event(health.EventNormal, ReasonAvailable, fmt.Sprintf("GPU %d (%s): utilisation readable again", r.GPU.Index, uuid))
	}
}

func (s *Sampler) notePublished(since time.Time, gpus int) {
	idle := !since.IsZero()
	if s.lastIdle != nil && *s.lastIdle == idle {
		return
	}
	s.lastIdle = &idle
	if idle {
		s.cfg.Log.Info("all GPUs idle", "since", since)
		s.event(health.EventNormal, ReasonIdle, fmt.Sprintf("all %d GPUs idle since %s", gpus, idlesignal.Format(since)))
	} else {
		s.cfg.Log.Info("GPUs busy")
		s.event(health.EventNormal, ReasonBusy, "GPUs in use")
	}
}

func (s *Sampler) event(eventType, reason, msg string) {
	if s.cfg.Recorder != nil {
		s.cfg.Recorder.Event(eventType, reason, msg)
	}
}

// Run samples now and every interval until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.SampleOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Metrics are the per-GPU gauges, named after dcgm-exporter's meanings
// (DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_MEM_COPY_UTIL, DCGM_FI_DEV_FB_USED) in
// Prometheus base units.
type Metrics struct {
	util, memUtil, memUsed, procs, idle *prometheus.GaugeVec
	errors                              *prometheus.CounterVec
	idleSince                           *prometheus.GaugeVec
	writes                              *prometheus.CounterVec
}

// NewMetrics registers the gauges with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	gpu := []string{"node", "gpu", "uuid"}
	g := func(name, help string, labels []string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	c := func(name, help string, labels []string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	return &Metrics{
		util:      g("gpuspace_gpu_utilization_ratio", "Fraction of the last NVML sample period in which a kernel ran on the GPU (utilization.gpu / 100; DCGM_FI_DEV_GPU_UTIL). Absent where the GPU reports no utilisation or could not be read.", gpu),
		memUtil:   g("gpuspace_gpu_memory_utilization_ratio", "Fraction of the last NVML sample period in which GPU memory was read or written (utilization.memory / 100; DCGM_FI_DEV_MEM_COPY_UTIL).", gpu),
		memUsed:   g("gpuspace_gpu_memory_used_bytes", "GPU framebuffer memory in use (DCGM_FI_DEV_FB_USED, in bytes).", gpu),
		procs:     g("gpuspace_gpu_compute_processes", "Processes with a compute context on the GPU.", gpu),
		idle:      g("gpuspace_gpu_idle", "1 when the GPU is idle (under the idle threshold, no compute process), 0 when busy or unreadable.", gpu),
		errors:    c("gpuspace_gpu_utilization_errors_total", "Samples in which the GPU's utilisation or processes could not be read (the GPU then counts as busy).", gpu),
		idleSince: g("gpuspace_node_gpus_idle_since_timestamp_seconds", "Unix time since which all of the node's GPUs have been idle; 0 while any is busy.", []string{"node"}),
		writes:    c("gpuspace_idle_signal_writes_total", "Writes of the node's idle annotation (only on idle/busy transitions).", []string{"node"}),
	}
}

func (m *Metrics) observe(node string, r Reading) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"node": node, "gpu": strconv.Itoa(r.GPU.Index), "uuid": r.GPU.UUID}
	m.idle.With(l).Set(boolFloat(r.Idle))
	if r.Err != nil {
		m.errors.With(l).Inc()
		m.util.Delete(l)
		m.memUtil.Delete(l)
		m.memUsed.Delete(l)
		m.procs.Delete(l)
		return
	}
	m.errors.With(l) // the series exists from the first sample, at 0
	if r.Usage.UtilizationSupported {
		m.util.With(l).Set(float64(r.Usage.GPUPercent) / 100)
		m.memUtil.With(l).Set(float64(r.Usage.MemoryPercent) / 100)
	} else {
		m.util.Delete(l)
		m.memUtil.Delete(l)
	}
	m.memUsed.With(l).Set(float64(r.Usage.MemoryUsedBytes))
	m.procs.With(l).Set(float64(r.Usage.ComputeProcesses))
}

func (m *Metrics) observeNode(node string, since time.Time) {
	if m == nil {
		return
	}
	v := 0.0
	if !since.IsZero() {
		v = float64(since.Unix())
	}
	m.idleSince.WithLabelValues(node).Set(v)
}

func (m *Metrics) wrote(node string) {
	if m != nil {
		m.writes.WithLabelValues(node).Inc()
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
