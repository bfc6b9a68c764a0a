// Package devcluster boots the local gpuspace system that `gpuspace dev`
// (and `make run`) starts: a real control plane, simulated GPU nodes and
// the gpuspace components, in one process tree with no Docker and no GPU.
package devcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/internal/dev/controlplane"
	"github.com/gpuspace/gpuspace/internal/dev/nodesim"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/util/logging"
)

// Options configures the local system.
type Options struct {
	// StateDir holds the kubeconfig, PKI, logs and etcd data.
	StateDir string
	// BinDir holds etcd, kube-apiserver and kube-controller-manager.
	BinDir string
	// Nodes is the simulated inventory; default DefaultNodes().
	Nodes []nodesim.Node
	// Listen is the address of the REST API and MCP; default
	// 127.0.0.1:8080.
	Listen string
	// Out receives progress and the summary.
	Out io.Writer
	// Clusters is how many worker clusters run: the hub's own (worker-1)
	// and Clusters-1 more, each its own control plane, registered on the
	// hub; default 1. Nodes name their cluster; a worker none names gets
	// DefaultWorkerNodes.
	Clusters int
}

// System is a running local system.
type System struct {
	ControlPlane *controlplane.ControlPlane
	Kube         kubernetes.Interface
	Nodes        []nodesim.Node
	// Workers are the extra worker clusters (--clusters N > 1).
	Workers []*Worker
	opts    Options
	begin   time.Time
}

// Start boots the local system and returns once it is ready; Run keeps it
// going until its context ends.
func Start(ctx context.Context, opts Options) (*System, error) {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.StateDir == "" {
		opts.StateDir = filepath.Join(".gpuspace", "dev")
	}
	if len(opts.Nodes) == 0 {
		opts.Nodes = DefaultNodes()
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:8080"
	}
	if opts.BinDir == "" {
		opts.BinDir = controlplane.BinDir()
	}
	if opts.Clusters < 1 {
		opts.Clusters = 1
	}
	hubNodes, workerNodes, err := splitNodes(opts.Nodes, opts.Clusters)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	begin := time.Now()
	step := func(s string) {
		fmt.Fprintf(opts.Out, "[%5.1fs] %s\n", time.Since(begin).Seconds(), s)
	}
	// The workers boot beside the hub.
	sys := &System{Nodes: hubNodes, opts: opts, begin: begin}
	workersDone := make(chan error, 1)
	go func() { workersDone <- sys.startWorkers(ctx, workerNodes, step) }()
	cp, err := controlplane.Start(ctx, controlplane.Config{
		Dir:               opts.StateDir,
		BinDir:            opts.BinDir,
		Durable:           true,
		ControllerManager: true,
		Progress:          step,
		StartTimeout:      15 * time.Minute, // a cold build of missing binaries is slow
	})
	if werr := <-workersDone; err != nil || werr != nil {
		if err == nil {
			cp.Stop()
			return nil, werr
		}
		sys.stopWorkers()
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	sys.ControlPlane = cp
	if sys.Kube, err = kubernetes.NewForConfig(cp.Config); err != nil {
		sys.stopAll()
		return nil, err
	}
	step("starting gpuspace-scheduler")
	if err := controlplane.EnsureBinaries(ctx, opts.BinDir, SchedulerBinary); err != nil {
		sys.stopAll()
		return nil, err
	}
	if err := startScheduler(cp, opts.BinDir); err != nil {
		sys.stopAll()
		return nil, err
	}
	step(fmt.Sprintf("control plane ready at %s", cp.URL))
	return sys, nil
}

// Run adds the simulated nodes, starts the gpuspace control plane
// (controllers, REST API, MCP), creates an Owner API key, prints the
// summary and runs until ctx ends, then stops everything it started.
func (s *System) Run(ctx context.Context) error {
	defer s.stopAll()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	step := func(msg string) {
		fmt.Fprintf(s.opts.Out, "[%5.1fs] %s\n", time.Since(s.begin).Seconds(), msg)
	}

	sim := nodesim.New(s.Kube)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		sim.Run(ctx)
	}()
	for _, n := range s.Nodes {
		if _, err := sim.AddNode(ctx, n); err != nil {
			return fmt.Errorf("add simulated node: %w", err)
		}
	}
	step(fmt.Sprintf("%d simulated GPU nodes ready", len(s.Nodes)))
	if err := s.runWorkers(ctx, &wg); err != nil {
		return err
	}
	if len(s.Workers) > 0 {
		step(fmt.Sprintf("%d worker clusters registered", len(s.Workers)))
	}

	logPath := filepath.Join(s.ControlPlane.Dir, "gpuspace.log")
	zl, err := fileLogger(logPath)
	if err != nil {
		return err
	}
	defer zl.Sync() //nolint:errcheck // best effort at exit

	step("starting gpuspace (controllers, REST API, MCP, console) on " + s.opts.Listen)
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- server.Run(ctx, server.Options{
			RESTConfig:     s.ControlPlane.Config,
			Listen:         s.opts.Listen,
			Namespace:      auth.DefaultNamespace,
			DefaultCluster: v1alpha1.DefaultCluster,
			Logger:         zl,
			Version:        "dev",
			API:            apiserver.Config{KubeconfigServer: s.ControlPlane.URL, KubeconfigCAData: s.ControlPlane.CAData},
			OnReady:        func(addr string, _ *apiserver.Server) { ready <- addr },
		})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		return fmt.Errorf("gpuspace: %w (log: %s)", err, logPath)
	case <-ctx.Done():
		return nil
	}

	key, err := s.ownerKey(ctx)
	if err != nil {
		return err
	}
	step("gpuspace ready")
	s.printSummary("http://"+addr, key, logPath)

	// The control plane's processes are children: if one dies, say so and
	// stop instead of serving a broken system.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(s.opts.Out, "stopping the local system...")
			return nil
		case err := <-errc:
			return fmt.Errorf("gpuspace stopped: %w (log: %s)", err, logPath)
		case <-tick.C:
			if err := s.ControlPlane.Err(); err != nil {
				return fmt.Errorf("%w (logs in %s)", err, s.ControlPlane.Dir)
			}
			if err := s.workerErr(); err != nil {
				return err
			}
		}
	}
}

// ownerKey creates an Owner API key for this run and writes it to
// <state-dir>/owner-api-key (0600): the cluster is new each run, so the
// key of the previous run is gone with it.
func (s *System) ownerKey(ctx context.Context) (string, error) {
	scheme, err := controller.Scheme()
	if err != nil {
		return "", err
	}
	c, err := client.New(s.ControlPlane.Config, client.Options{Scheme: scheme})
	if err != nil {
		return "", err
	}
	key, _, err := auth.CreateKey(ctx, c, auth.DefaultNamespace, auth.KeyRequest{
		Name: "dev-owner", UserName: "gpuspace dev", Role: auth.RoleOwner,
		Description: "created by gpuspace dev",
	}, time.Now())
	if err != nil {
		return "", fmt.Errorf("create the Owner API key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.ControlPlane.Dir, "owner-api-key"), []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write owner-api-key: %w", err)
	}
	return key, nil
}

// fileLogger logs JSON to path, keeping the terminal for progress and the
// summary, and routes klog and controller-runtime there too.
func fileLogger(path string) (*zap.Logger, error) {
	zl, lr, err := logging.New(logging.Options{Format: "json", OutputPath: path})
	if err != nil {
		return nil, fmt.Errorf("log to %s: %w", path, err)
	}
	ctrl.SetLogger(lr)
	return zl, nil
}

func (s *System) printSummary(api, key, logPath string) {
	dir := s.ControlPlane.Dir
	if rel, err := filepath.Rel(mustGetwd(), dir); err == nil && !strings.HasPrefix(rel, "..") {
		dir = rel
	}
	gpus := 0
	for _, n := range s.Nodes {
		gpus += n.GPUs
	}
	// make build puts a matching kubectl in bin/; prefer it when none is on
	// PATH so the commands below work as written.
	kubectl := "kubectl"
	if _, err := exec.LookPath("kubectl"); err != nil {
		if p := filepath.Join(s.opts.BinDir, "kubectl"); fileExists(p) {
			kubectl = p
			if rel, err := filepath.Rel(mustGetwd(), p); err == nil && !strings.HasPrefix(rel, "..") {
				kubectl = rel
			}
		}
	}
	fmt.Fprintf(s.opts.Out, `
gpuspace local system is running (%[1]d nodes, %[2]d GPUs, simulated).

  Console         %[3]s/          (log in with the Owner API key below)
  REST API        %[3]s/api/v1      (OpenAPI: %[3]s/docs)
  Event stream    %[3]s/api/v1/events
  MCP             %[3]s/mcp
  kube-apiserver  %[4]s
  kubeconfig      %[5]s/kubeconfig
  Owner API key   %[5]s/owner-api-key
  logs            %[5]s/*.log
%[7]s
Try:
  export KUBECONFIG=%[5]s/kubeconfig
  %[6]s get nodes -L gpuspace.io/gpu.shape,nvidia.com/gpu.count,node.kubernetes.io/instance-type

  TOKEN=$(curl -s %[3]s/api/v1/auth -d "{\"apiKey\": \"$(cat %[5]s/owner-api-key)\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/')
  curl -s -H "Authorization: Bearer $TOKEN" %[3]s/api/v1/inventory/list
  curl -s -H "Authorization: Bearer $TOKEN" %[3]s/api/v1/slice-workspace -d '{"workspaceName":"team-a","clusters":["worker-1"],"namespaces":["team-a"],"username":"Jane","email":"jane@example.com"}'
  curl -s -H "Authorization: Bearer $TOKEN" %[3]s/api/v1/gpr -d '{"gprName":"first","sliceName":"team-a","clusterName":"worker-1","numberOfGPUs":8,"numberOfGPUNodes":1,"gpuShape":"H100","exitDuration":"0d1h0m","priority":201}'
  %[6]s get gpr,ws
  %[6]s get nodes -L gpuspace.io/workspace,gpuspace.io/gpr

Press Ctrl-C to stop everything.
`, len(s.Nodes), gpus, api, s.ControlPlane.URL, dir, kubectl, s.workerSummary())
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}
