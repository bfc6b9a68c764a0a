package faultsuite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/internal/dev/controlplane"
	"github.com/gpuspace/gpuspace/internal/dev/faultproxy"
	"github.com/gpuspace/gpuspace/internal/dev/nodesim"
)

// gpuspaceBinary is bin/gpuspace; `make test` builds it before the tests,
// and EnsureBinaries builds it where it is missing.
var gpuspaceBinary = controlplane.Binary{Name: "gpuspace", Package: "./cmd/gpuspace"}

// system is the running parts: a control plane, the fault proxy in front
// of it, simulated nodes, two gpuspace replicas behind the proxy, and the
// workspaces of the load.
type system struct {
	dir   string
	cp    *controlplane.ControlPlane
	proxy *faultproxy.Proxy
	// proxyLog is where the proxy logs each fault it injects.
	proxyLog *zap.Logger
	kube     kubernetes.Interface
	client   client.Client // straight to the apiserver, for the load and the watcher
	config   *rest.Config
	outages  *outages
	// replicas run `gpuspace serve --leader-elect`; leader is the one
	// leading at the last poll.
	replicas []*replica
	leader   func() *replica
	nodes    []string
	// workspaces of the load; each has one namespace, wsNamespace(ws).
	workspaces []string
}

func wsNamespace(ws string) string { return ws + "-ns" }

// startSystem boots the parts and waits until a replica leads and every
// workspace's namespace exists. Everything is stopped, and the directory
// removed, when the test ends (kept, with the logs, when it failed and
// GPUSPACE_TESTENV_KEEP is set).
func startSystem(t *testing.T, cfg config) *system {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir, err := os.MkdirTemp("", "gpuspace-faults-")
	if err != nil {
		t.Fatal(err)
	}
	s := &system{dir: dir, outages: newOutages()}
	t.Cleanup(func() { s.stop(t, cancel) })

	start := time.Now()
	bootCtx, bootCancel := context.WithTimeout(ctx, 3*time.Minute)
	defer bootCancel()
	s.cp, err = controlplane.Start(bootCtx, controlplane.Config{
		Dir: filepath.Join(dir, "controlplane"),
		// No controller-manager creates default ServiceAccounts.
		DisableAdmissionPlugins: []string{"ServiceAccount"},
	})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	if err := controlplane.EnsureBinaries(bootCtx, controlplane.BinDir(), gpuspaceBinary); err != nil {
		t.Fatalf("gpuspace binary: %v", err)
	}
	s.config = rest.CopyConfig(s.cp.Config)
	s.config.QPS, s.config.Burst = 200, 400 // the load and the watcher are not under test
	if s.kube, err = kubernetes.NewForConfig(s.config); err != nil {
		t.Fatal(err)
	}
	scheme, err := controller.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	if s.client, err = client.New(s.config, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.kube.CoreV1().Namespaces().Create(bootCtx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: auth.DefaultNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s: %v", auth.DefaultNamespace, err)
	}

	proxyLog, err := fileLogger(filepath.Join(dir, "faultproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.proxyLog = proxyLog
	s.proxy, err = faultproxy.Start(faultproxy.Config{Upstream: s.cp.Config, Seed: cfg.seed, Rates: cfg.rates, Only: cfg.only, Logger: proxyLog.Named("faultproxy")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane ready after %s; every injected fault is logged in %s", time.Since(start).Round(time.Millisecond), filepath.Join(dir, "faultproxy.log"))
	s.proxy.SetEnabled(false) // on when the load starts
	kubeconfig := filepath.Join(dir, "proxy-kubeconfig")
	if err := s.proxy.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}

	sim := nodesim.New(s.kube, nodesim.WithHeartbeat(5*time.Second))
	simDone := make(chan struct{})
	go func() { defer close(simDone); sim.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-simDone })
	for i := range cfg.nodes {
		name := fmt.Sprintf("fs-node-%d", i)
		if _, err := sim.AddNode(bootCtx, nodesim.Node{Name: name, Cluster: v1alpha1.DefaultCluster, InstanceType: "g4dn.12xlarge",
			Product: "Tesla-T4", MemoryMiB: 15360, GPUs: 4}); err != nil {
			t.Fatalf("add node: %v", err)
		}
		s.nodes = append(s.nodes, name)
	}

	if err := s.installAdmissionPolicy(bootCtx, s.nodes[0]); err != nil {
		t.Fatalf("admission policy: %v", err)
	}

	for _, name := range []string{"gpuspace-a", "gpuspace-b"} {
		r, err := startReplica(controlplane.BinDir(), dir, name, kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		s.replicas = append(s.replicas, r)
	}
	s.leader = watchLeader(ctx, s.replicas, s.outages)
	waitUntil(t, bootCtx, "a gpuspace replica leads", func() error {
		if s.leader() == nil {
			return fmt.Errorf("no replica reports leader_election_master_status 1 (logs in %s)", dir)
		}
		return nil
	})
	t.Logf("a replica leads after %s", time.Since(start).Round(time.Millisecond))
	s.createWorkspaces(t, bootCtx, cfg.workspaces)
	t.Logf("system ready after %s", time.Since(start).Round(time.Millisecond))
	return s
}

// createWorkspaces creates n workspaces and waits until the workspace
// controller made each one's namespace, labelled with its workspace.
func (s *system) createWorkspaces(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for i := range n {
		ws := fmt.Sprintf("fw%d", i)
		obj := &v1alpha1.Workspace{
			ObjectMeta: metav1.ObjectMeta{Name: ws},
			Spec: v1alpha1.WorkspaceSpec{Username: "user-" + ws, Clusters: []string{v1alpha1.DefaultCluster},
				Namespaces: []v1alpha1.WorkspaceNamespace{{Namespace: wsNamespace(ws)}}},
		}
		if err := s.client.Create(ctx, obj); err != nil {
			t.Fatalf("create workspace %s: %v", ws, err)
		}
		s.workspaces = append(s.workspaces, ws)
	}
	waitUntil(t, ctx, "every workspace's namespace", func() error {
		for _, ws := range s.workspaces {
			ns, err := s.kube.CoreV1().Namespaces().Get(ctx, wsNamespace(ws), metav1.GetOptions{})
			if err != nil {
				return err
			}
			if ns.Labels[v1alpha1.LabelWorkspace] != ws {
				return fmt.Errorf("namespace %s not labelled for %s yet", ns.Name, ws)
			}
		}
		return nil
	})
}

// apiserverReady polls the apiserver's /readyz (not through the proxy)
// until it answers or ctx ends.
func (s *system) apiserverReady(ctx context.Context) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := s.kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("apiserver not ready: %w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends everything startSystem started, replicas first.
func (s *system) stop(t *testing.T, cancel context.CancelFunc) {
	var wg sync.WaitGroup
	for _, r := range s.replicas {
		wg.Go(r.stop)
	}
	wg.Wait()
	cancel()
	if s.proxy != nil {
		_ = s.proxy.Close()
		_ = s.proxyLog.Sync()
	}
	if s.cp != nil {
		if err := s.cp.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	}
	if t.Failed() && os.Getenv("GPUSPACE_TESTENV_KEEP") != "" {
		t.Logf("kept %s (control plane and replica logs)", s.dir)
		return
	}
	_ = os.RemoveAll(s.dir)
}

// waitUntil polls cond every 200 ms until it returns nil, failing the test
// with its last error when ctx ends.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() error) {
	t.Helper()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fileLogger logs JSON at debug level to path.
func fileLogger(path string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	cfg.OutputPaths, cfg.ErrorOutputPaths = []string{path}, []string{path}
	cfg.Sampling = nil // every fault, not a sample
	return cfg.Build()
}

// ignoreNotFound is nil for a NotFound error.
func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
