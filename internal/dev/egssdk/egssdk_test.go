package egssdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/dev/reference"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/server/servertest"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(crzap.New(crzap.WriteTo(io.Discard)))
	testenv.Main(m, &env)
}

// envRequirePython makes a missing python3 a failure instead of a skip;
// CI (.ci/run) sets it, after installing python3.
const envRequirePython = "GPUSPACE_REQUIRE_PYTHON"

// python3 returns the interpreter, or skips the test (fails it under
// GPUSPACE_REQUIRE_PYTHON) where there is none.
func python3(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv(envRequirePython) != "" {
			t.Fatalf("python3 is required (%s is set) and not on PATH: %v", envRequirePython, err)
		}
		t.Skipf("python3 is not on PATH: the EGS Python SDK test needs it (.ci/run installs it)")
	}
	return py
}

// sdkDir returns the SDK's folder in the reference material, or skips the
// test (fails it under CI) where the material is absent.
func sdkDir(t *testing.T) string {
	t.Helper()
	return reference.Path(t, "egs-sdk")
}

// system is a running `gpuspace serve` with GPU nodes of a cluster of its
// own, and an Owner API key.
type system struct {
	url, key, cluster, suffix string
	nodes                     []string
}

const (
	instanceType = "a2-highgpu-1g"
	gpuShape     = "A100"
	memoryGB     = 40
)

func startSystem(t *testing.T, nodes int) *system {
	t.Helper()
	ctx := context.Background()
	sfx := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	s := &system{cluster: "sdk-" + sfx, suffix: sfx}
	for i := range nodes {
		name := "sdk-a100-" + sfx + "-" + strconv.Itoa(i)
		if _, err := env.AddGPUNode(ctx, testenv.GPUNode{Name: name, Cluster: s.cluster, InstanceType: instanceType,
			Product: "NVIDIA-A100-SXM4-40GB", MemoryMiB: memoryGB * 1024, GPUs: 1}); err != nil {
			t.Fatalf("add node %s: %v", name, err)
		}
		t.Cleanup(func() { _ = env.Kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}) })
		s.nodes = append(s.nodes, name)
	}
	ns := "gpuspace-sdk-" + sfx
	s.url = servertest.Start(t, env.Config, server.Options{Namespace: ns})
	t.Cleanup(func() { _ = env.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) })
	key, _, err := auth.CreateKey(ctx, env.Client, ns, auth.KeyRequest{Name: "sdk-owner", Role: auth.RoleOwner}, time.Now())
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	s.key = key
	servertest.WaitFor(t, "the key to authenticate", 45*time.Second, func() bool {
		_, err := servertest.Login(ctx, s.url, key)
		return err == nil
	})
	return s
}

// TestEGSPythonSDK runs testdata/sdk_flow.py: every function of the SDK's
// egs package against a live gpuspace, the SDK's own request bodies and
// response parsers, asserting on what the SDK returns (see the script).
func TestEGSPythonSDK(t *testing.T) {
	py, sdk := python3(t), sdkDir(t)
	s := startSystem(t, 2)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-B", filepath.Join("testdata", "sdk_flow.py"))
	cmd.Env = append(os.Environ(),
		"PYTHONPATH="+sdk, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1",
		"EGS_ENDPOINT="+s.url, "EGS_API_KEY="+s.key,
		"SDK_CLUSTER="+s.cluster, "SDK_NODES="+strings.Join(s.nodes, ","),
		"SDK_INSTANCE_TYPE="+instanceType, "SDK_GPU_SHAPE="+gpuShape, "SDK_MEMORY_GB="+strconv.Itoa(memoryGB),
		"SDK_SUFFIX="+s.suffix, "SDK_OUT="+out,
	)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		t.Log(line)
	}
	if err != nil {
		t.Fatalf("sdk_flow.py: %v (its output is above)", err)
	}
	// The kubeconfig the SDK got right after create_workspace is a real one.
	if _, err := clientcmd.LoadFromFile(filepath.Join(out, "kubeconfig")); err != nil {
		t.Errorf("kubeconfig from get_workspace_kubeconfig: %v", err)
	}
}

// TestKubeconfigRightAfterCreate: each of the three wire forms of
// kube-config, sent at once after its workspace's create (no pause, the
// workspace controller still at work), answers a kubeconfig that works in
// the workspace's namespace.
func TestKubeconfigRightAfterCreate(t *testing.T) {
	s := startSystem(t, 0)
	ctx := context.Background()
	tok, err := servertest.Login(ctx, s.url, s.key)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path string, body any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequestWithContext(ctx, method, s.url+path, rd)
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var env map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %v", method, path, resp.StatusCode, err)
		}
		return resp.StatusCode, env
	}
	forms := []struct {
		name string
		get  func(ws string) (int, map[string]any)
	}{
		{"GET with a JSON body", func(ws string) (int, map[string]any) {
			return call(http.MethodGet, "/api/v1/slice-workspace/kube-config", map[string]string{"workspaceName": ws, "clusterName": "worker-1"})
		}},
		{"GET with a query", func(ws string) (int, map[string]any) {
			return call(http.MethodGet, "/api/v1/slice-workspace/kube-config?"+url.Values{"workspaceName": {ws}, "clusterName": {"worker-1"}}.Encode(), nil)
		}},
		{"POST", func(ws string) (int, map[string]any) {
			return call(http.MethodPost, "/api/v1/slice-workspace/kube-config", map[string]string{"workspaceName": ws, "clusterName": "worker-1"})
		}},
	}
	for i, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			ws, ns := "kc-"+s.suffix+"-"+strconv.Itoa(i), "kc-ns-"+s.suffix+"-"+strconv.Itoa(i)
			code, r := call(http.MethodPost, "/api/v1/slice-workspace", map[string]any{
				"workspaceName": ws, "clusters": []string{"worker-1"}, "namespaces": []string{ns}, "username": "u"})
			if code != http.StatusOK {
				t.Fatalf("create workspace: %d %v", code, r)
			}
			t.Cleanup(func() {
				call(http.MethodDelete, "/api/v1/slice-workspace", map[string]string{"workspaceName": ws})
				_ = env.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
			})
			code, r = f.get(ws)
			if code != http.StatusOK {
				t.Fatalf("kube-config right after create: %d %v", code, r)
			}
			kc, _ := r["data"].(map[string]any)["kubeConfig"].(string)
			cfg, err := clientcmd.NewNonInteractiveClientConfig(*mustLoad(t, kc), ws+"/"+ns+"@worker-1", nil, nil).ClientConfig()
			if err != nil {
				t.Fatalf("kubeconfig: %v", err)
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hello"}}
			if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				t.Errorf("create a ConfigMap in %s with the kubeconfig: %v", ns, err)
			}
		})
	}
}

func mustLoad(t *testing.T, kc string) *clientcmdapi.Config {
	t.Helper()
	cfg, err := clientcmd.Load([]byte(kc))
	if err != nil {
		t.Fatalf("kubeconfig does not load: %v\n%s", err, kc)
	}
	return cfg
}
