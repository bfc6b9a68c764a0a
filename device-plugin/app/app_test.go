package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/gpuspace/gpuspace/device-plugin/nvml"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/util/idlesignal"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(*Config) string
		wantErr string
	}{
		{"defaults", []string{"--node-name=n1"}, nil, func(c *Config) string {
			return cmp.Diff([]any{"real", "nvidia.com/gpu", true, "gpuspace.io/gpu-memory", "/var/lib/kubelet/device-plugins/", []uint64{13, 31, 43, 45, 68, 109}, true},
				[]any{c.NVML, c.ResourceName, c.GPUMemory, c.GPUMemoryResource, c.KubeletSocketDir, c.ignoredXIDs, c.Labels})
		}, ""},
		{"environment mirrors flags", nil, map[string]string{
			"NVML": "mock:t4x1", "RESOURCE_NAME": "example.com/gpu", "GPU_MEMORY": "false", "NODE_NAME": "n2",
			"KUBELET_SOCKET_DIR": "/tmp/dp", "XID_IGNORE": "13", "LOG_FORMAT": "console", "HEALTH_PROBE_INTERVAL": "2s",
		}, func(c *Config) string {
			return cmp.Diff([]any{"mock:t4x1", "example.com/gpu", false, "n2", "/tmp/dp", []uint64{13}, "console", 2 * time.Second},
				[]any{c.NVML, c.ResourceName, c.GPUMemory, c.NodeName, c.KubeletSocketDir, c.ignoredXIDs, c.LogFormat, c.ProbeInterval})
		}, ""},
		{"flags win over the environment", []string{"--nvml=mock:dgxa100", "--labels=false"}, map[string]string{"NVML": "mock:t4x1", "LABELS": "true"},
			func(c *Config) string { return cmp.Diff([]any{"mock:dgxa100", false}, []any{c.NVML, c.Labels}) }, ""},
		{"extra fatal XIDs", []string{"--labels=false"}, map[string]string{"XID_FATAL": "95,119"},
			func(c *Config) string { return cmp.Diff([]uint64{95, 119}, c.fatalXIDs) }, ""},
		{"empty ignore list", []string{"--labels=false", "--xid-ignore="}, map[string]string{"XID_IGNORE": "13"},
			func(c *Config) string { return cmp.Diff([]uint64{}, c.ignoredXIDs) }, ""},
		{"no XIDs ignored, from the environment", []string{"--labels=false"}, map[string]string{"XID_IGNORE": "none"},
			func(c *Config) string { return cmp.Diff([]uint64{}, c.ignoredXIDs) }, ""},
		{"print-inventory needs no node", []string{"--print-inventory"}, nil, nil, ""},
		{"labels need a node name", nil, nil, nil, "--node-name"},
		{"bad nvml", []string{"--nvml=fake", "--labels=false"}, nil, nil, "--nvml"},
		{"bad XID in the environment", []string{"--labels=false"}, map[string]string{"XID_IGNORE": "13,x"}, nil, "--xid-ignore"},
		{"bad bool in the environment", []string{"--labels=false"}, map[string]string{"GPU_MEMORY": "maybe"}, nil, "GPU_MEMORY"},
		{"same resource names", []string{"--labels=false", "--gpu-memory-resource-name=nvidia.com/gpu"}, nil, nil, "differ"},
		{"stray argument", []string{"--labels=false", "extra"}, nil, nil, "unexpected"},
		{"idle measurement defaults", []string{"--labels=false"}, nil, func(c *Config) string {
			return cmp.Diff([]any{15 * time.Second, uint(5), true, ":9400", 5 * time.Minute},
				[]any{c.UtilizationInterval, c.IdleThreshold, c.IdleSignal, c.MetricsAddr, c.UtilizationPublishInterval})
		}, ""},
		{"idle measurement from the environment", []string{"--labels=false"}, map[string]string{
			"UTILIZATION_INTERVAL": "30s", "IDLE_THRESHOLD": "10", "IDLE_SIGNAL": "false", "METRICS_ADDR": "off",
		}, func(c *Config) string {
			return cmp.Diff([]any{30 * time.Second, uint(10), false, "off"}, []any{c.UtilizationInterval, c.IdleThreshold, c.IdleSignal, c.MetricsAddr})
		}, ""},
		{"idle threshold over 100", []string{"--labels=false", "--idle-threshold=101"}, nil, nil, "--idle-threshold"},
		{"idle threshold 0", []string{"--labels=false", "--idle-threshold=0"}, nil, nil, "--idle-threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			c, err := ParseConfig(tt.args, getenv, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				if diff := tt.check(c); diff != "" {
					t.Errorf("config (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for flag, env := range map[string]string{"nvml": "NVML", "kubelet-socket-dir": "KUBELET_SOCKET_DIR", "node-name": "NODE_NAME"} {
		if got := EnvName(flag); got != env {
			t.Errorf("EnvName(%q) = %q, want %q", flag, got, env)
		}
	}
}

func TestPrintInventory(t *testing.T) {
	m, err := nvml.NewMock("mixed")
	if err != nil {
		t.Fatal(err)
	}
	uuids := m.UUIDs()
	cfg, err := ParseConfig([]string{"--print-inventory", "--nvml=mock:mixed", "--log-format=console"}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Run(context.Background(), cfg, &out); err != nil {
		t.Fatal(err)
	}
	want := "index, name, uuid, memory.total [MiB], pci.bus_id, utilization.gpu [%]\n" +
		"0, NVIDIA A100-PCIE-80GB, " + uuids[0] + ", 81920 MiB, 00000000:00:00.0, 0 %\n" +
		"1, NVIDIA A100-PCIE-80GB, " + uuids[1] + ", 81920 MiB, 00000000:01:00.0, 0 %\n" +
		"2, NVIDIA A30-PCIE-24GB, " + uuids[2] + ", 24576 MiB, 00000000:02:00.0, 0 %\n" +
		"3, Tesla T4, " + uuids[3] + ", 15360 MiB, 00000000:03:00.0, 0 %\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("CSV inventory (-want +got):\n%s", diff)
	}

	// Scripted use, as nvidia-smi prints it: a percentage, [N/A] where the
	// GPU reports none (MIG mode), [Unknown Error] where reading fails.
	lib, gpus, err := m.InitLib()
	if err != nil {
		t.Fatal(err)
	}
	m.SetUtilization(uuids[0], 37)
	m.SetUsage(uuids[1], nvml.MockUsage{UtilizationUnsupported: true})
	m.SetUsageError(uuids[2], gonvml.ERROR_UNKNOWN)
	m.SetProcesses(uuids[3], 12)
	out.Reset()
	if err := PrintInventory(&out, cfg, lib, gpus); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
		got = append(got, line[strings.LastIndex(line, ", ")+2:])
	}
	if diff := cmp.Diff([]string{"37 %", "[N/A]", "[Unknown Error]", "0 %"}, got); diff != "" {
		t.Errorf("utilization.gpu column (-want +got):\n%s", diff)
	}
	cfg.InventoryFormat = "json"
	out.Reset()
	if err := PrintInventory(&out, cfg, lib, gpus); err != nil {
		t.Fatal(err)
	}
	var scripted Inventory
	if err := json.Unmarshal(out.Bytes(), &scripted); err != nil {
		t.Fatal(err)
	}
	type use struct {
		Usage *nvml.Usage
		Err   bool
		Idle  bool
	}
	var gotUse []use
	for _, g := range scripted.GPUs {
		gotUse = append(gotUse, use{g.Usage, g.UsageError != "", g.Idle})
	}
	wantUse := []use{
		{&nvml.Usage{GPUPercent: 37, UtilizationSupported: true}, false, false},
		{&nvml.Usage{}, false, true},
		{nil, true, false},
		{&nvml.Usage{UtilizationSupported: true, ComputeProcesses: 1, MemoryUsedBytes: 1 << 30}, false, false},
	}
	if diff := cmp.Diff(wantUse, gotUse); diff != "" {
		t.Errorf("JSON usage (-want +got):\n%s", diff)
	}
	cfg.InventoryFormat = "csv"

	cfg.InventoryFormat = "json"
	out.Reset()
	if err := Run(context.Background(), cfg, &out); err != nil {
		t.Fatal(err)
	}
	var inv Inventory
	if err := json.Unmarshal(out.Bytes(), &inv); err != nil {
		t.Fatalf("JSON inventory: %v\n%s", err, out.String())
	}
	wantRes := map[string]int{"nvidia.com/gpu": 4, "gpuspace.io/gpu-memory": 80 + 80 + 24 + 15}
	if diff := cmp.Diff(wantRes, inv.Resources); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	if inv.Labels["gpuspace.io/gpu.shape"] != "A100" || len(inv.GPUs) != 4 || inv.GPUs[3].NUMANode != 1 {
		t.Errorf("inventory = %+v", inv)
	}
}

func TestRealNVMLMissing(t *testing.T) {
	cfg := &Config{NVML: "real"}
	lib, err := OpenNVML(cfg)
	if err == nil {
		lib.Shutdown()
		t.Skip("libnvidia-ml is installed here")
	}
	if !errors.Is(err, nvml.ErrLibraryNotFound) || !strings.Contains(err.Error(), "--nvml=mock:") {
		t.Errorf("error %q: want ErrLibraryNotFound with a hint at --nvml=mock:", err)
	}
}

// TestRunServesAndCleansUp runs the whole plugin on a mock node without a
// kubelet: it serves both resources and removes its sockets on exit.
func TestRunServesAndCleansUp(t *testing.T) {
	dir, err := os.MkdirTemp("", "dpapp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	cfg, err := ParseConfig([]string{"--nvml=mock:dgxb200", "--labels=false", "--kubelet-socket-dir=" + dir,
		"--kubelet-poll-interval=10ms", "--log-level=error", "--metrics-addr=" + metricsAddr,
		"--utilization-interval=20ms"}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, &bytes.Buffer{}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		for _, s := range []string{GPUSocket, GPUMemorySocket} {
			if _, err := os.Stat(filepath.Join(dir, s)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind: %v", s, err)
			}
		}
	}()

	wantCounts := map[string]int{GPUSocket: 8, GPUMemorySocket: 8 * 180}
	for socket, want := range wantCounts {
		path := filepath.Join(dir, socket)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(path); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never appeared", socket)
			}
		}
		conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		stream, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(ctx, &pluginapi.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Devices) != want {
			t.Errorf("%s: %d devices, want %d", socket, len(resp.Devices), want)
		}
	}

	// The metrics endpoint has a utilisation gauge per GPU.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		body, err := get("http://" + metricsAddr + "/metrics")
		n := strings.Count(body, "\ngpuspace_gpu_utilization_ratio{")
		if err == nil && n == 8 && strings.Contains(body, "\ngpuspace_gpu_compute_processes{") &&
			strings.Contains(body, "\ngpuspace_gpu_memory_used_bytes{") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics has %d utilisation gauges (%v), want 8:\n%.2000s", n, err, body)
		}
	}
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestRunPublishesIdleness runs the whole plugin against a real apiserver:
// the node's idle annotation follows the scripted GPU, beside its labels.
func TestRunPublishesIdleness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	const node = "dp-idle"
	if _, err := env.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, err := ParseConfig([]string{"--nvml=mock:t4x1", "--node-name=" + node, "--kubeconfig=" + env.Kubeconfig,
		"--kubelet-socket-dir=" + dir, "--utilization-interval=20ms", "--metrics-addr=off", "--log-level=error"},
		func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	m, lib, _ := nvml.MustMock(t, "t4x1")
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- RunWithNVML(runCtx, cfg, lib, logr.Discard(), &bytes.Buffer{}) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("RunWithNVML: %v", err)
		}
	}()
	wait := func(what string, cond func(*corev1.Node) bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			n, err := env.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			if err == nil && cond(n) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; node annotations %v, labels %v", what, n.Annotations, n.Labels)
			}
		}
	}
	idle := func(n *corev1.Node) bool { s, ok := idlesignal.Read(n); return ok && !s.IsZero() }
	wait("idle and labelled", func(n *corev1.Node) bool { return idle(n) && n.Labels["gpuspace.io/gpu.shape"] == "T4" })
	m.SetUtilization(m.UUIDs()[0], 90)
	wait("busy at 90 %", func(n *corev1.Node) bool {
		s, ok := idlesignal.Read(n)
		u, _ := idlesignal.ReadUtilization(n)
		return ok && s.IsZero() && u == 90
	})
	m.SetUtilization(m.UUIDs()[0], 0)
	wait("idle again", idle)
}
