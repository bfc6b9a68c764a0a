package devcluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/controller/workspace"
	"github.com/gpuspace/gpuspace/internal/clusters/provision"
	"github.com/gpuspace/gpuspace/internal/dev/controlplane"
	"github.com/gpuspace/gpuspace/internal/dev/nodesim"
)

// Worker is an extra worker cluster of `gpuspace dev --clusters N`: its
// own etcd, kube-apiserver and gpuspace-scheduler, simulated nodes, and a
// Cluster object on the hub.
type Worker struct {
	// Name is the cluster name (worker-2, worker-3, ...).
	Name string
	// ControlPlane is the worker's etcd and kube-apiserver.
	ControlPlane *controlplane.ControlPlane
	// Nodes are its simulated GPU nodes.
	Nodes []nodesim.Node
}

// WorkerName is the name of the i-th cluster (1 is the hub's own).
func WorkerName(i int) string { return fmt.Sprintf("worker-%d", i) }

// DefaultWorkerNodes are the simulated nodes of worker i (i ≥ 2), with GPU
// shapes other than the hub's: A100 and T4 on worker-2, L4 on worker-3,
// L40S on the ones after.
func DefaultWorkerNodes(i int) []nodesim.Node {
	name := WorkerName(i)
	node := func(n int, prefix, instance, product string, mib int64, gpus int, region, zone string) nodesim.Node {
		return nodesim.Node{
			Name: fmt.Sprintf("%s-%s-%d", name, prefix, n), Cluster: name, InstanceType: instance,
			Product: product, MemoryMiB: mib, GPUs: gpus, Region: region, Zone: zone,
			ProviderID: fmt.Sprintf("gce://gpuspace-dev/%s/%s-%s-%d", zone, name, prefix, n),
		}
	}
	var out []nodesim.Node
	switch i {
	case 2:
		for n := range 2 {
			out = append(out, node(n, "a100", "a2-highgpu-8g", "NVIDIA-A100-SXM4-40GB", 40960, 8, "us-west1", "us-west1-b"))
		}
		out = append(out, node(0, "t4", "n1-standard-8", "Tesla-T4", 15360, 1, "us-west1", "us-west1-b"))
	case 3:
		for n := range 2 {
			out = append(out, node(n, "l4", "g2-standard-48", "NVIDIA-L4", 23034, 4, "europe-west4", "europe-west4-a"))
		}
	default:
		for n := range 2 {
			out = append(out, node(n, "l40s", "g6e.12xlarge", "NVIDIA-L40S", 46068, 4, "eu-north-1", "eu-north-1a"))
		}
	}
	return out
}

// splitNodes parts nodes by cluster: the hub's (no cluster, or worker-1)
// and each worker's. A node naming a cluster beyond --clusters is an error.
func splitNodes(nodes []nodesim.Node, n int) (hub []nodesim.Node, workers map[string][]nodesim.Node, err error) {
	workers = map[string][]nodesim.Node{}
	for _, nd := range nodes {
		switch c := nd.Cluster; {
		case c == "" || c == v1alpha1.DefaultCluster:
			hub = append(hub, nd)
		case !isWorker(c, n):
			return nil, nil, fmt.Errorf("node %s names cluster %q; with --clusters %d the clusters are worker-1..worker-%d", nd.Name, c, n, n)
		default:
			workers[c] = append(workers[c], nd)
		}
	}
	return hub, workers, nil
}

func isWorker(c string, n int) bool {
	for i := 2; i <= n; i++ {
		if c == WorkerName(i) {
			return true
		}
	}
	return false
}

// startWorkers boots the worker control planes of --clusters N (2..N)
// side by side, each with gpuspace-scheduler.
func (s *System) startWorkers(ctx context.Context, nodes map[string][]nodesim.Node, step func(string)) error {
	n := s.opts.Clusters
	if n <= 1 {
		return nil
	}
	step(fmt.Sprintf("starting %d worker control planes", n-1))
	if err := controlplane.EnsureBinaries(ctx, s.opts.BinDir, SchedulerBinary); err != nil {
		return err
	}
	s.Workers = make([]*Worker, n-1)
	errs := make([]error, n-1)
	var wg sync.WaitGroup
	for i := 2; i <= n; i++ {
		wg.Go(func() {
			name := WorkerName(i)
			cp, err := controlplane.Start(ctx, controlplane.Config{
				Dir: filepath.Join(s.opts.StateDir, name), BinDir: s.opts.BinDir, Durable: true,
				// No ServiceAccount admission: no controller-manager runs
				// in a worker to make default ServiceAccounts.
				DisableAdmissionPlugins: []string{"ServiceAccount"},
				StartTimeout:            5 * time.Minute,
			})
			if err != nil {
				errs[i-2] = fmt.Errorf("start %s: %w", name, err)
				return
			}
			if err := startScheduler(cp, s.opts.BinDir); err != nil {
				cp.Stop()
				errs[i-2] = fmt.Errorf("%s: %w", name, err)
				return
			}
			wn := nodes[name]
			if wn == nil {
				wn = DefaultWorkerNodes(i)
			}
			s.Workers[i-2] = &Worker{Name: name, ControlPlane: cp, Nodes: wn}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.stopWorkers()
		return err
	}
	for _, w := range s.Workers {
		step(fmt.Sprintf("%s ready at %s", w.Name, w.ControlPlane.URL))
	}
	return nil
}

// stopWorkers stops the worker control planes.
func (s *System) stopWorkers() {
	for _, w := range s.Workers {
		if w != nil {
			_ = w.ControlPlane.Stop()
		}
	}
}

// runWorkers simulates each worker's nodes until ctx ends, and registers
// each worker on the hub with the least-privilege credential
// (manifests/worker/credential.yaml, a token of its ServiceAccount).
func (s *System) runWorkers(ctx context.Context, wg *sync.WaitGroup) error {
	if len(s.Workers) == 0 {
		return nil
	}
	scheme, err := controller.Scheme()
	if err != nil {
		return err
	}
	hub, err := client.New(s.ControlPlane.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: auth.DefaultNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", auth.DefaultNamespace, err)
	}
	for _, w := range s.Workers {
		cs, err := kubernetes.NewForConfig(w.ControlPlane.Config)
		if err != nil {
			return err
		}
		sim := nodesim.New(cs)
		wg.Go(func() { sim.Run(ctx) })
		for _, n := range w.Nodes {
			if _, err := sim.AddNode(ctx, n); err != nil {
				return fmt.Errorf("%s: add simulated node: %w", w.Name, err)
			}
		}
		// The workspace-user ClusterRole that workspaces' RoleBindings
		// there name, as manifests/worker installs it on a worker (the
		// hub's credential may bind it, not create it).
		wc, err := client.New(w.ControlPlane.Config, client.Options{Scheme: scheme})
		if err != nil {
			return err
		}
		if err := workspace.EnsureClusterRole(ctx, wc, wc); err != nil {
			return fmt.Errorf("%s: workspace-user ClusterRole: %w", w.Name, err)
		}
		kc, err := provision.Credential(ctx, w.ControlPlane.Config, 7*24*3600)
		if err != nil {
			return fmt.Errorf("%s: credential: %w", w.Name, err)
		}
		if _, err := provision.Register(ctx, hub, provision.RegisterOptions{
			Name: w.Name, Kubeconfig: kc, Local: v1alpha1.DefaultCluster, Namespace: auth.DefaultNamespace,
		}); err != nil {
			return fmt.Errorf("register %s: %w", w.Name, err)
		}
	}
	return nil
}

// workerErr reports a worker control-plane process that died.
func (s *System) workerErr() error {
	for _, w := range s.Workers {
		if err := w.ControlPlane.Err(); err != nil {
			return fmt.Errorf("%s: %w (logs in %s)", w.Name, err, w.ControlPlane.Dir)
		}
	}
	return nil
}

// workerSummary lists each worker's kube-apiserver and kubeconfig.
func (s *System) workerSummary() string {
	var out string
	for _, w := range s.Workers {
		gpus := 0
		for _, n := range w.Nodes {
			gpus += n.GPUs
		}
		out += fmt.Sprintf("  %-15s %s  kubeconfig %s  (%d nodes, %d GPUs)\n", w.Name, w.ControlPlane.URL, w.ControlPlane.KubeconfigPath, len(w.Nodes), gpus)
	}
	return out
}

// stopAll stops the hub's control plane and the workers'.
func (s *System) stopAll() {
	if s.ControlPlane != nil {
		_ = s.ControlPlane.Stop()
	}
	s.stopWorkers()
}
