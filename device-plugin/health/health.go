// Package health keeps the health of a node's GPUs current from NVML
// events and periodic re-probes.
//
// The rules, the same in spirit as NVIDIA's device plugin:
//   - an XID event marks its GPU unhealthy, unless the XID is on the ignore
//     list (application errors such as 13, 31, 43, 45, 68, 109, which say
//     nothing about the GPU);
//   - XID 48 (double-bit ECC) and 79 (fallen off the bus), and double-bit
//     ECC events, are fatal: the GPU stays unhealthy until the plugin
//     restarts, which in practice means a node reboot or a GPU reset;
//   - any other unhealthy GPU is re-probed every probe interval and becomes
//     healthy again after RecoverAfter clean probes in a row;
//   - a GPU that supports no events is unmonitored, not unhealthy: only
//     probes can find it failing;
//   - when NVML itself stops answering (calls fail or hang), every GPU is
//     unhealthy and a Kubernetes event says why.
package health

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/gpuspace/gpuspace/device-plugin/nvml"
)

// DefaultIgnoredXIDs are XIDs caused by applications, not by the GPU.
var DefaultIgnoredXIDs = []uint64{13, 31, 43, 45, 68, 109}

// FatalXIDs never recover by re-probing: XID 48 (double-bit ECC) and 79
// (GPU fallen off the bus) need a GPU reset or a reboot.
var FatalXIDs = []uint64{48, 79}

// watchedEvents are the NVML events that can make a GPU unhealthy.
const watchedEvents = nvml.EventXID | nvml.EventDoubleBitECC | nvml.EventGPUUnavailable

// Kubernetes event types, as in k8s.io/api/core/v1.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Recorder records Kubernetes events about the node (NVML failures, GPUs
// turning unhealthy and recovering). A nil Recorder records nothing.
type Recorder interface {
	Event(eventType, reason, message string)
}

// Config tunes a Monitor. Zero values mean the defaults.
type Config struct {
	// IgnoredXIDs replace DefaultIgnoredXIDs when non-nil; an empty
	// non-nil slice ignores nothing.
	IgnoredXIDs []uint64
	// FatalXIDs are added to FatalXIDs (48 and 79, which are always
	// fatal); a GPU with one of them stays unhealthy until the plugin
	// restarts.
	FatalXIDs []uint64
	// ProbeInterval is how often NVML and unhealthy GPUs are re-probed
	// (default 5s).
	ProbeInterval time.Duration
	// ProbeTimeout is how long one round of probes may take before NVML
	// counts as unresponsive (default 10s).
	ProbeTimeout time.Duration
	// RecoverAfter is how many clean probes in a row bring a GPU back
	// (default 3).
	RecoverAfter int
	// WaitTimeout bounds one wait for events; it only limits how quickly
	// the monitor stops (default 500ms).
	WaitTimeout time.Duration
	Recorder    Recorder
	Log         logr.Logger
}

// ParseXIDs parses a comma-separated XID list ("13,31,43"). The empty
// string and "none" (which an environment variable can carry) are an
// empty, non-nil list.
func ParseXIDs(s string) ([]uint64, error) {
	out := []uint64{}
	if strings.TrimSpace(s) == "none" {
		return out, nil
	}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		x, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("XID %q: %w", f, err)
		}
		out = append(out, x)
	}
	return out, nil
}

type gpuState struct {
	healthy     bool
	fatal       bool
	reason      string
	clean       int  // clean probes since it turned unhealthy
	unmonitored bool // supports no events
}

// Monitor tracks the health of a fixed set of GPUs.
type Monitor struct {
	lib     nvml.Lib
	uuids   []string
	cfg     Config
	ignored map[uint64]bool
	fatal   map[uint64]bool

	mu      sync.Mutex
	gpus    map[string]*gpuState
	nvmlErr error // non-nil while NVML is failing
	subs    map[chan struct{}]struct{}
}

// NewMonitor returns a Monitor for the GPUs uuids; they start healthy.
func NewMonitor(lib nvml.Lib, uuids []string, cfg Config) *Monitor {
	if cfg.IgnoredXIDs == nil {
		cfg.IgnoredXIDs = DefaultIgnoredXIDs
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 5 * time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 10 * time.Second
	}
	if cfg.RecoverAfter <= 0 {
		cfg.RecoverAfter = 3
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = 500 * time.Millisecond
	}
	m := &Monitor{
		lib:     lib,
		uuids:   slices.Clone(uuids),
		cfg:     cfg,
		ignored: map[uint64]bool{},
		fatal:   map[uint64]bool{},
		gpus:    map[string]*gpuState{},
		subs:    map[chan struct{}]struct{}{},
	}
	for _, x := range cfg.IgnoredXIDs {
		m.ignored[x] = true
	}
	for _, x := range slices.Concat(FatalXIDs, cfg.FatalXIDs) {
		m.fatal[x] = true
	}
	for _, u := range uuids {
		m.gpus[u] = &gpuState{healthy: true}
	}
	return m
}

// Unhealthy maps every unhealthy GPU's UUID to the reason.
func (m *Monitor) Unhealthy() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for u, g := range m.gpus {
		if !g.healthy {
			out[u] = g.reason
		}
	}
	return out
}

// Unmonitored lists the GPUs that support no health events, sorted.
func (m *Monitor) Unmonitored() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for u, g := range m.gpus {
		if g.unmonitored {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// Subscribe returns a channel that receives a value after every change of
// health (changes in a burst may coalesce into one), and a function that
// ends the subscription.
func (m *Monitor) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.subs[ch] = struct{}{}
	m.mu.Unlock()
	return ch, func() {
		m.mu.Lock()
		delete(m.subs, ch)
		m.mu.Unlock()
	}
}

// notify wakes subscribers; m.mu must be held.
func (m *Monitor) notify() {
	for ch := range m.subs {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending; it will read the latest state
		}
	}
}

func (m *Monitor) record(eventType, reason, msg string) {
	if m.cfg.Recorder != nil {
		m.cfg.Recorder.Event(eventType, reason, msg)
	}
}

// Run watches events and probes until ctx ends. It returns nil then; it
// never gives up on NVML, which may come back.
func (m *Monitor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { m.watchEvents(ctx) })
	wg.Go(func() { m.probeLoop(ctx) })
	wg.Wait()
	return nil
}

func (m *Monitor) watchEvents(ctx context.Context) {
	const retry = time.Second
	for ctx.Err() == nil {
		w, unsupported, err := m.lib.WatchEvents(m.uuids, watchedEvents)
		if err != nil {
			m.nvmlFailed(fmt.Errorf("register for events: %w", err))
			sleep(ctx, retry)
			continue
		}
		m.setUnmonitored(unsupported)
		err = m.waitLoop(ctx, w)
		w.Close()
		if err != nil {
			m.nvmlFailed(err)
			sleep(ctx, retry)
		}
	}
}

// waitLoop handles events until ctx ends (nil) or NVML fails (the error).
func (m *Monitor) waitLoop(ctx context.Context, w nvml.EventWatcher) error {
	for ctx.Err() == nil {
		ev, err := w.Wait(m.cfg.WaitTimeout)
		if errors.Is(err, nvml.ErrTimeout) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for events: %w", err)
		}
		m.handle(ev)
	}
	return nil
}

func (m *Monitor) setUnmonitored(uuids []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for u, g := range m.gpus {
		g.unmonitored = slices.Contains(uuids, u)
	}
	if len(uuids) > 0 {
		m.cfg.Log.Info("GPUs support no health events; they are unmonitored, not unhealthy", "gpus", uuids)
	}
}

// handle applies one event.
func (m *Monitor) handle(ev nvml.Event) {
	var reason string
	fatal := false
	switch {
	case ev.Type&nvml.EventXID != 0:
		if m.ignored[ev.XID] {
			m.cfg.Log.V(1).Info("ignored XID", "gpu", ev.UUID, "xid", ev.XID)
			return
		}
		reason = fmt.Sprintf("XID %d", ev.XID)
		fatal = m.fatal[ev.XID]
	case ev.Type&nvml.EventDoubleBitECC != 0:
		reason, fatal = "double-bit ECC error", true
	case ev.Type&nvml.EventGPUUnavailable != 0:
		reason = "GPU unavailable"
	default:
		return
	}
	targets := []string{ev.UUID}
	if _, known := m.gpus[ev.UUID]; !known {
		// NVML could not say which GPU; NVIDIA's plugin takes them all
		// down too, since any of them may be the broken one.
		targets = m.uuids
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for _, u := range targets {
		g := m.gpus[u]
		g.clean = 0
		g.fatal = g.fatal || fatal
		if g.healthy || g.reason != reason {
			changed = true
			if g.healthy {
				m.cfg.Log.Info("GPU unhealthy", "gpu", u, "reason", reason, "permanent", g.fatal)
				m.record(EventWarning, "GPUUnhealthy", fmt.Sprintf("GPU %s: %s", u, reason))
			}
		}
		g.healthy = false
		g.reason = reason
	}
	if changed {
		m.notify()
	}
}

// nvmlFailed marks every GPU unhealthy because NVML does not answer.
func (m *Monitor) nvmlFailed(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := m.nvmlErr == nil
	m.nvmlErr = err
	reason := "NVML: " + err.Error()
	for _, g := range m.gpus {
		g.healthy = false
		g.clean = 0
		if !g.fatal {
			g.reason = reason
		}
	}
	if first {
		m.cfg.Log.Error(err, "NVML is failing; all GPUs unhealthy")
		m.record(EventWarning, "NVMLUnresponsive", "NVML is failing, all GPUs marked unhealthy: "+err.Error())
		m.notify()
	}
}

func (m *Monitor) probeLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.ProbeInterval)
	defer t.Stop()
	// One round at a time: a hung NVML call cannot be cancelled, so a new
	// round waits for the previous one instead of piling up goroutines.
	var done chan map[string]error
	var deadline <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if done != nil {
				continue
			}
			done = make(chan map[string]error, 1)
			deadline = time.After(m.cfg.ProbeTimeout)
			go func(out chan<- map[string]error) { out <- m.probeAll() }(done)
		case res := <-done:
			done, deadline = nil, nil
			m.applyProbes(res)
		case <-deadline:
			deadline = nil
			m.nvmlFailed(fmt.Errorf("no answer within %s", m.cfg.ProbeTimeout))
		}
	}
}

// nodeKey holds the node-wide probe's error in probeAll's result.
const nodeKey = ""

func (m *Monitor) probeAll() map[string]error {
	res := map[string]error{}
	if _, err := m.lib.DriverVersion(); err != nil {
		res[nodeKey] = err
		return res
	}
	for _, u := range m.uuids {
		res[u] = m.lib.Probe(u)
	}
	return res
}

func (m *Monitor) applyProbes(res map[string]error) {
	if err := res[nodeKey]; err != nil {
		m.nvmlFailed(err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	if m.nvmlErr != nil {
		m.cfg.Log.Info("NVML answers again; GPUs recover after clean probes")
		m.record(EventNormal, "NVMLRecovered", "NVML answers again")
		m.nvmlErr = nil
	}
	for _, u := range slices.Sorted(maps.Keys(res)) {
		g, err := m.gpus[u], res[u]
		switch {
		case err != nil:
			if g.healthy {
				m.cfg.Log.Info("GPU failed its probe", "gpu", u, "err", err.Error())
				m.record(EventWarning, "GPUUnhealthy", fmt.Sprintf("GPU %s: probe failed: %v", u, err))
				changed = true
			}
			g.healthy, g.clean = false, 0
			if !g.fatal { // keep the XID that took it down for good
				g.reason = "probe failed: " + err.Error()
			}
		case g.healthy || g.fatal:
		default:
			g.clean++
			if g.clean >= m.cfg.RecoverAfter {
				m.cfg.Log.Info("GPU recovered", "gpu", u, "after", g.reason)
				m.record(EventNormal, "GPURecovered", fmt.Sprintf("GPU %s recovered from %s", u, g.reason))
				g.healthy, g.clean, g.reason = true, 0, ""
				changed = true
			}
		}
	}
	if changed {
		m.notify()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
