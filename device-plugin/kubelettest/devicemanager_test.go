package kubelettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	cadvisorapi "github.com/google/cadvisor/lib/model"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"k8s.io/kubernetes/pkg/kubelet/cm/containermap"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
	"k8s.io/kubernetes/pkg/kubelet/config"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"

	"github.com/gpuspace/gpuspace/device-plugin/app"
	"github.com/gpuspace/gpuspace/device-plugin/nvml"
	"github.com/gpuspace/gpuspace/device-plugin/plugin"
)

// inNamespace is set in the environment of the re-executed test.
const inNamespace = "GPUSPACE_DP_TEST_IN_MOUNT_NS"

// TestKubeletDeviceManager registers the plugin (the whole program, as
// app.Run wires it, on an 8×H100 mock) with the kubelet's device manager:
// the manager sees 8 GPUs and 640 GiB of GPU memory, allocates through the
// plugin's preferred allocation and Allocate, drops a GPU that reports XID
// 79, and after a kubelet restart (a new manager, which wipes the socket
// directory and creates a new kubelet.sock) the plugin registers again.
func TestKubeletDeviceManager(t *testing.T) {
	if os.Getenv(inNamespace) == "" {
		reexecUnshared(t)
		return
	}
	mountTmpfs(t)
	testDeviceManager(t)
}

// reexecUnshared runs this test again in a private mount namespace.
func reexecUnshared(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace (unshare -m); skipped")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("util-linux unshare not found; skipped")
	}
	if out, err := exec.Command(unshare, "-m", "--propagation", "private", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare -m is not permitted here (%v: %s); skipped", err, bytes.TrimSpace(out))
	}
	args := []string{"-m", "--propagation", "private", os.Args[0], "-test.run=^" + t.Name() + "$", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(unshare, args...)
	cmd.Env = append(os.Environ(), inNamespace+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in a private mount namespace:\n%s", out)
	if err != nil {
		t.Fatalf("test in the mount namespace failed: %v", err)
	}
	if bytes.Contains(out, []byte("--- SKIP")) {
		t.Skip("skipped in the mount namespace")
	}
}

// mountTmpfs hides the host's kubelet state behind a tmpfs: on
// /var/lib/kubelet where it exists, else on /var/lib (so that nothing is
// created on the host), with the device plugin directory inside.
func mountTmpfs(t *testing.T) {
	target := "/var/lib/kubelet"
	if _, err := os.Stat(target); err != nil {
		target = "/var/lib"
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", 0, "size=64m,mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", target, err)
	}
	if err := os.MkdirAll(pluginapi.DevicePluginPath, 0o750); err != nil {
		t.Fatal(err)
	}
}

// kubelet is a device manager as the kubelet runs it, with the pods it
// considers active.
type kubelet struct {
	*devicemanager.ManagerImpl
	mu   sync.Mutex
	pods []*v1.Pod
}

func startKubelet(t *testing.T) *kubelet {
	t.Helper()
	logger := klog.Background()
	numa := []cadvisorapi.Node{{Id: 0}, {Id: 1}}
	m, err := devicemanager.NewManagerImpl(logger, numa, topologymanager.NewFakeManager(logger))
	if err != nil {
		t.Fatal(err)
	}
	k := &kubelet{ManagerImpl: m}
	active := func() []*v1.Pod {
		k.mu.Lock()
		defer k.mu.Unlock()
		return slices.Clone(k.pods)
	}
	ready := config.NewSourcesReady(func(sets.Set[string]) bool { return true })
	if err := m.Start(logger, active, ready, containermap.NewContainerMap(), sets.New[string]()); err != nil {
		t.Fatal(err)
	}
	return k
}

// waitCapacity waits until the manager's allocatable resources are want.
func (k *kubelet) waitCapacity(t *testing.T, want map[string]int64) {
	t.Helper()
	var got map[string]int64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, allocatable, _ := k.GetCapacity(klog.Background())
		got = map[string]int64{}
		for name, q := range allocatable {
			got[string(name)] = q.Value()
		}
		if cmp.Equal(want, got) {
			return
		}
	}
	t.Fatalf("device manager's allocatable: %v, want %v", got, want)
}

// allocate admits a pod whose containers each request one resource, and
// returns each container's environment from the device manager.
func (k *kubelet) allocate(t *testing.T, requests ...v1.ResourceList) []map[string]string {
	t.Helper()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: types.UID("uid-1")}}
	for i, r := range requests {
		pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{
			Name: fmt.Sprintf("c%d", i), Resources: v1.ResourceRequirements{Limits: r, Requests: r},
		})
	}
	k.mu.Lock()
	k.pods = append(k.pods, pod)
	k.mu.Unlock()
	ctx := context.Background()
	var envs []map[string]string
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if err := k.Allocate(ctx, pod, c, lifecycle.AddOperation); err != nil {
			t.Fatalf("Allocate %s: %v", c.Name, err)
		}
		opts, err := k.GetDeviceRunContainerOptions(ctx, pod, c)
		if err != nil {
			t.Fatalf("GetDeviceRunContainerOptions %s: %v", c.Name, err)
		}
		env := map[string]string{}
		for _, e := range opts.Envs {
			env[e.Name] = e.Value
		}
		envs = append(envs, env)
	}
	return envs
}

func testDeviceManager(t *testing.T) {
	k := startKubelet(t)
	defer func() { k.Stop(klog.Background()) }()

	cfg, err := app.ParseConfig([]string{"--nvml=mock:dgxh100", "--labels=false", "--kubelet-poll-interval=20ms"},
		func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	mock, err := nvml.NewMock("dgxh100")
	if err != nil {
		t.Fatal(err)
	}
	lib := mock.Lib()
	if err := lib.Init(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunWithNVML(ctx, cfg, lib, logr.Discard(), &bytes.Buffer{}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("plugin: %v", err)
		}
		for _, s := range []string{app.GPUSocket, app.GPUMemorySocket} {
			if _, err := os.Stat(filepath.Join(pluginapi.DevicePluginPath, s)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket %s left after exit: %v", s, err)
			}
		}
	}()

	want := map[string]int64{"nvidia.com/gpu": 8, "gpuspace.io/gpu-memory": 8 * 80}
	k.waitCapacity(t, want)

	uuid := func(i int) string { return nvml.MockUUID("dgxh100", i) }
	envs := k.allocate(t,
		v1.ResourceList{"nvidia.com/gpu": resource.MustParse("2")},
		v1.ResourceList{"gpuspace.io/gpu-memory": resource.MustParse("10")},
	)
	// Two GPUs on one NUMA node (the plugin's preferred allocation), and
	// ten GiB packed onto one GPU.
	wantEnvs := []map[string]string{
		{plugin.EnvVisibleDevices: uuid(0) + "," + uuid(1)},
		{plugin.EnvVisibleDevices: uuid(0), plugin.EnvGPUMemory: "10"},
	}
	if diff := cmp.Diff(wantEnvs, envs); diff != "" {
		t.Errorf("container environments (-want +got):\n%s", diff)
	}

	// XID 79 on GPU 5: the kubelet takes the GPU and its 80 GiB out of
	// the allocatable resources.
	for !mock.WatchingAll(nvml.EventXID) {
		time.Sleep(time.Millisecond)
	}
	if err := mock.InjectXID(uuid(5), 79); err != nil {
		t.Fatal(err)
	}
	unhealthy := map[string]int64{"nvidia.com/gpu": 7, "gpuspace.io/gpu-memory": 7 * 80}
	k.waitCapacity(t, unhealthy)

	// Kubelet restart: the old manager stops (kubelet.sock goes), a new
	// one wipes the directory and serves a new kubelet.sock; the plugin
	// must notice and register again.
	if err := k.Stop(klog.Background()); err != nil {
		t.Fatal(err)
	}
	k = startKubelet(t)
	k.waitCapacity(t, unhealthy)
	names, err := os.ReadDir(pluginapi.DevicePluginPath)
	if err != nil {
		t.Fatal(err)
	}
	var sockets []string
	for _, n := range names {
		if strings.HasSuffix(n.Name(), ".sock") {
			sockets = append(sockets, n.Name())
		}
	}
	if diff := cmp.Diff([]string{app.GPUMemorySocket, app.GPUSocket, "kubelet.sock"}, sockets); diff != "" {
		t.Errorf("sockets after the restart (-want +got):\n%s", diff)
	}
}
