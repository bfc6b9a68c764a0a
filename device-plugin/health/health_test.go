package health

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/google/go-cmp/cmp"

	"github.com/gpuspace/gpuspace/device-plugin/nvml"
)

type fixture struct {
	mock  *nvml.Mock
	mon   *Monitor
	uuids []string
	rec   *EventLog
}

// start runs a Monitor over a dgxh100 mock with fast probes until the test
// ends.
func start(t *testing.T, cfg Config, setup func(*nvml.Mock)) *fixture {
	t.Helper()
	m, err := nvml.NewMock("dgxh100")
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(m)
	}
	lib := m.Lib()
	if err := lib.Init(); err != nil {
		t.Fatal(err)
	}
	rec := &EventLog{}
	cfg.Recorder = rec
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 5 * time.Millisecond
	}
	if cfg.RecoverAfter == 0 {
		cfg.RecoverAfter = 3
	}
	cfg.WaitTimeout = 20 * time.Millisecond
	mon := NewMonitor(lib, m.UUIDs(), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { mon.Run(ctx); close(done) }()
	t.Cleanup(func() {
		m.SetHung(false)
		cancel()
		<-done
	})
	f := &fixture{mock: m, mon: mon, uuids: m.UUIDs(), rec: rec}
	f.waitRegistered(t)
	return f
}

// waitRegistered waits until the monitor's event set exists, so that
// injected events have somewhere to go.
func (f *fixture) waitRegistered(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f.mock.WatchingAll(nvml.EventXID) {
		if time.Now().After(deadline) {
			t.Fatal("monitor never registered for events")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFor waits until cond holds of the unhealthy set, re-checking on every
// change the monitor announces.
func (f *fixture) waitFor(t *testing.T, what string, cond func(map[string]string) bool) map[string]string {
	t.Helper()
	ch, cancel := f.mon.Subscribe()
	defer cancel()
	timeout := time.After(10 * time.Second)
	for {
		u := f.mon.Unhealthy()
		if cond(u) {
			return u
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("timed out waiting for %s; unhealthy: %v", what, u)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestXIDs(t *testing.T) {
	tests := []struct {
		name      string
		ignore    []uint64 // nil: the defaults
		xid       uint64
		unhealthy bool
	}{
		{"fallen off the bus", nil, 79, true},
		{"double-bit ECC", nil, 48, true},
		{"contained ECC", nil, 94, true},
		{"graphics engine exception (app)", nil, 13, false},
		{"memory page fault (app)", nil, 31, false},
		{"preemptive cleanup (app)", nil, 45, false},
		{"custom list ignores 94", []uint64{94}, 94, false},
		{"custom list no longer ignores 13", []uint64{94}, 13, true},
		{"empty list ignores nothing", []uint64{}, 43, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Slow probes: this test is about events alone.
			f := start(t, Config{IgnoredXIDs: tt.ignore, ProbeInterval: time.Hour}, nil)
			if err := f.mock.InjectXID(f.uuids[2], tt.xid); err != nil {
				t.Fatal(err)
			}
			// Events are handled in order, so once the marker XID on
			// GPU 5 shows, the one before it has been handled too.
			if err := f.mock.InjectXID(f.uuids[5], 79); err != nil {
				t.Fatal(err)
			}
			got := f.waitFor(t, "the marker XID", func(u map[string]string) bool { return u[f.uuids[5]] != "" })
			want := []string{f.uuids[5]}
			if tt.unhealthy {
				want = []string{f.uuids[2], f.uuids[5]}
			}
			slices.Sort(want)
			if diff := cmp.Diff(want, keys(got)); diff != "" {
				t.Errorf("unhealthy GPUs after XID %d (-want +got):\n%s", tt.xid, diff)
			}
		})
	}
}

func TestRecovery(t *testing.T) {
	f := start(t, Config{RecoverAfter: 3, FatalXIDs: []uint64{95}}, nil)
	// A recoverable XID on GPU 1, fatal ones on GPUs 2, 3 (48 and 79, always
	// fatal) and 4 (95, configured).
	for gpu, xid := range map[int]uint64{1: 94, 2: 79, 3: 48, 4: 95} {
		if err := f.mock.InjectXID(f.uuids[gpu], xid); err != nil {
			t.Fatal(err)
		}
	}
	f.waitFor(t, "GPUs 1-4 unhealthy", func(u map[string]string) bool { return len(u) == 4 })
	got := f.waitFor(t, "GPU 1 to recover", func(u map[string]string) bool { return u[f.uuids[1]] == "" })
	// Many probe rounds later, the fatal XIDs still hold their GPUs down.
	stillDown := map[string]string{f.uuids[2]: "XID 79", f.uuids[3]: "XID 48", f.uuids[4]: "XID 95"}
	if diff := cmp.Diff(stillDown, got); diff != "" {
		t.Errorf("after recovery (-want +got):\n%s", diff)
	}
	time.Sleep(50 * time.Millisecond) // ten more probe rounds
	if diff := cmp.Diff(stillDown, f.mon.Unhealthy()); diff != "" {
		t.Errorf("a fatal XID recovered (-want +got):\n%s", diff)
	}
	for _, e := range []string{"Warning/GPUUnhealthy", "Normal/GPURecovered"} {
		if !f.rec.Has(e) {
			t.Errorf("no %s event recorded", e)
		}
	}
}

func TestProbeFailure(t *testing.T) {
	f := start(t, Config{}, nil)
	f.mock.SetLost(f.uuids[4], true)
	got := f.waitFor(t, "the lost GPU unhealthy", func(u map[string]string) bool { return u[f.uuids[4]] != "" })
	if len(got) != 1 || !strings.Contains(got[f.uuids[4]], "probe failed") {
		t.Errorf("unhealthy = %v, want only GPU 4 with a failed probe", got)
	}
	f.mock.SetLost(f.uuids[4], false)
	f.waitFor(t, "the GPU back", func(u map[string]string) bool { return len(u) == 0 })
}

func TestNVMLFailure(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(*nvml.Mock)
		heal    func(*nvml.Mock)
	}{
		{"calls fail", func(m *nvml.Mock) { m.SetFailing(gonvml.ERROR_UNKNOWN) }, func(m *nvml.Mock) { m.SetFailing(gonvml.SUCCESS) }},
		{"calls hang", func(m *nvml.Mock) { m.SetHung(true) }, func(m *nvml.Mock) { m.SetHung(false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, Config{ProbeTimeout: 50 * time.Millisecond}, nil)
			if err := f.mock.InjectXID(f.uuids[0], 79); err != nil {
				t.Fatal(err)
			}
			f.waitFor(t, "GPU 0 unhealthy", func(u map[string]string) bool { return len(u) == 1 })
			tt.breakIt(f.mock)
			got := f.waitFor(t, "all GPUs unhealthy", func(u map[string]string) bool { return len(u) == 8 })
			if !strings.HasPrefix(got[f.uuids[3]], "NVML: ") {
				t.Errorf("reason %q, want an NVML failure", got[f.uuids[3]])
			}
			if !f.rec.Has("Warning/NVMLUnresponsive") {
				t.Errorf("no NVMLUnresponsive event; recorded %v", f.rec.Take())
			}
			tt.heal(f.mock)
			got = f.waitFor(t, "all but GPU 0 back", func(u map[string]string) bool { return len(u) == 1 })
			if diff := cmp.Diff(map[string]string{f.uuids[0]: "XID 79"}, got); diff != "" {
				t.Errorf("after NVML came back (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnattributedEvent(t *testing.T) {
	f := start(t, Config{ProbeInterval: time.Hour}, nil)
	if err := f.mock.InjectEvent("", nvml.EventXID, 79); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "all GPUs unhealthy", func(u map[string]string) bool { return len(u) == 8 })
}

func TestUnmonitored(t *testing.T) {
	var gpu7 string
	f := start(t, Config{ProbeInterval: time.Hour}, func(m *nvml.Mock) {
		gpu7 = m.UUIDs()[7]
		m.SetEventsUnsupported(gpu7, true)
	})
	if diff := cmp.Diff([]string{gpu7}, f.mon.Unmonitored()); diff != "" {
		t.Errorf("unmonitored (-want +got):\n%s", diff)
	}
	if u := f.mon.Unhealthy(); len(u) != 0 {
		t.Errorf("unmonitored GPU counted unhealthy: %v", u)
	}
}

func TestParseXIDs(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint64
		wantErr bool
	}{
		{"", []uint64{}, false},
		{"none", []uint64{}, false},
		{"13", []uint64{13}, false},
		{" 13, 31 ,43,", []uint64{13, 31, 43}, false},
		{"13,x", nil, true},
		{"-1", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseXIDs(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseXIDs(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseXIDs(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}
