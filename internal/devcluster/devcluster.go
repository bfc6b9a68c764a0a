// Package devcluster boots the local gpuspace system that `gpuspace dev`
// (and `make run`) starts: a real control plane, simulated GPU nodes and
// the gpuspace components, in one process tree with no Docker and no GPU.
package devcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/gpuspace/gpuspace/internal/controlplane"
	"github.com/gpuspace/gpuspace/internal/nodesim"
)

// Options configures the local system.
type Options struct {
	// StateDir holds the kubeconfig, PKI, logs and etcd data.
	StateDir string
	// BinDir holds etcd, kube-apiserver and kube-controller-manager.
	BinDir string
	// Nodes is the simulated inventory; default DefaultNodes().
	Nodes []nodesim.Node
	// Out receives progress and the summary.
	Out io.Writer
}

// System is a running local system.
type System struct {
	ControlPlane *controlplane.ControlPlane
	Kube         kubernetes.Interface
	Nodes        []nodesim.Node
	opts         Options
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
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	begin := time.Now()
	step := func(s string) {
		fmt.Fprintf(opts.Out, "[%5.1fs] %s\n", time.Since(begin).Seconds(), s)
	}
	cp, err := controlplane.Start(ctx, controlplane.Config{
		Dir:               opts.StateDir,
		BinDir:            opts.BinDir,
		Durable:           true,
		ControllerManager: true,
		Progress:          step,
		StartTimeout:      15 * time.Minute, // a cold build of missing binaries is slow
	})
	if err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	sys := &System{ControlPlane: cp, Nodes: opts.Nodes, opts: opts}
	if sys.Kube, err = kubernetes.NewForConfig(cp.Config); err != nil {
		cp.Stop()
		return nil, err
	}
	step(fmt.Sprintf("control plane ready at %s", cp.URL))
	return sys, nil
}

// Run adds the simulated nodes, prints the summary and runs until ctx ends,
// then stops everything it started.
func (s *System) Run(ctx context.Context) error {
	defer s.ControlPlane.Stop()
	sim := nodesim.New(s.Kube)
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		sim.Run(ctx)
	}()
	defer func() { <-simDone }()
	for _, n := range s.Nodes {
		if _, err := sim.AddNode(ctx, n); err != nil {
			return fmt.Errorf("add simulated node: %w", err)
		}
	}
	fmt.Fprintf(s.opts.Out, "        %d simulated GPU nodes ready\n", len(s.Nodes))
	s.printSummary()

	// The control plane's processes are children: if one dies, say so and
	// stop instead of serving a broken system.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(s.opts.Out, "stopping the local system...")
			return nil
		case <-tick.C:
			if err := s.ControlPlane.Err(); err != nil {
				return fmt.Errorf("%w (logs in %s)", err, s.ControlPlane.Dir)
			}
		}
	}
}

func (s *System) printSummary() {
	kc := s.ControlPlane.KubeconfigPath
	if rel, err := filepath.Rel(mustGetwd(), kc); err == nil && len(rel) < len(kc) {
		kc = rel
	}
	gpus := 0
	for _, n := range s.Nodes {
		gpus += n.GPUs
	}
	fmt.Fprintf(s.opts.Out, `
gpuspace local system is running (%d nodes, %d GPUs, simulated).

  kube-apiserver   %s
  kubeconfig       %s
  logs, state      %s

Try:
  export KUBECONFIG=%s
  kubectl get nodes -L gpuspace.io/gpu.shape,nvidia.com/gpu.count,node.kubernetes.io/instance-type
  kubectl get workspaces,gpr

Press Ctrl-C to stop everything.
`, len(s.Nodes), gpus, s.ControlPlane.URL, kc, s.ControlPlane.Dir, kc)
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}
