// Package testenv gives integration tests a real control plane: etcd and
// kube-apiserver 1.37.1 (internal/dev/controlplane), the gpuspace CRDs, typed
// clients, and simulated GPU nodes (internal/dev/nodesim). One control plane
// runs per test package:
//
//	var env *testenv.Env
//
//	func TestMain(m *testing.M) { testenv.Main(m, &env) }
//
// Everything it starts (processes, ports, the temporary directory) is gone
// when Main returns.
package testenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/internal/dev/controlplane"
	"github.com/gpuspace/gpuspace/internal/dev/nodesim"
)

// Env is a running control plane and clients for it.
type Env struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Kube is a typed client for the built-in APIs.
	Kube kubernetes.Interface
	// Client is a typed controller-runtime client whose scheme has the
	// built-in APIs and gpuspace.io/v1alpha1.
	Client client.Client
	// Scheme is Client's scheme.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of an admin kubeconfig file.
	Kubeconfig string
	// CAData is the apiserver's CA (PEM).
	CAData []byte
	// Nodes simulates GPU nodes; AddGPUNode and SetNodeReady use it.
	Nodes *nodesim.Simulator

	cp     *controlplane.ControlPlane
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
}

// GPUNode describes a simulated GPU node; see nodesim.Node.
type GPUNode = nodesim.Node

type options struct {
	cfg controlplane.Config
}

// Option changes how the control plane is started.
type Option func(*options)

// WithControllerManager also runs kube-controller-manager, for tests that
// need Deployments, garbage collection or namespace deletion.
func WithControllerManager() Option {
	return func(o *options) {
		o.cfg.ControllerManager = true
		o.cfg.DisableAdmissionPlugins = nil
	}
}

// NewScheme returns the controllers' scheme: the built-in APIs and
// gpuspace.io/v1alpha1.
func NewScheme() *runtime.Scheme {
	s, err := controller.Scheme()
	if err != nil {
		panic(err) // only static registration happens there
	}
	return s
}

// Start boots a control plane in a new temporary directory.
func Start(ctx context.Context, opts ...Option) (*Env, error) {
	o := options{cfg: controlplane.Config{
		// No controller-manager creates default ServiceAccounts, so pods
		// could not be admitted with the ServiceAccount plugin on.
		DisableAdmissionPlugins: []string{"ServiceAccount"},
	}}
	for _, opt := range opts {
		opt(&o)
	}
	dir, err := os.MkdirTemp("", "gpuspace-testenv-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	o.cfg.Dir = dir
	cp, err := controlplane.Start(ctx, o.cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	env := &Env{
		Config:     cp.Config,
		Kubeconfig: cp.KubeconfigPath,
		CAData:     cp.CAData,
		Scheme:     NewScheme(),
		cp:         cp,
		dir:        dir,
		done:       make(chan struct{}),
	}
	if env.Kube, err = kubernetes.NewForConfig(cp.Config); err != nil {
		env.Stop()
		return nil, fmt.Errorf("kube client: %w", err)
	}
	if env.Client, err = client.New(cp.Config, client.Options{Scheme: env.Scheme}); err != nil {
		env.Stop()
		return nil, fmt.Errorf("controller-runtime client: %w", err)
	}
	env.Nodes = nodesim.New(env.Kube, nodesim.WithHeartbeat(5*time.Second))
	runCtx, cancel := context.WithCancel(context.Background())
	env.cancel = cancel
	go func() {
		defer close(env.done)
		env.Nodes.Run(runCtx)
	}()
	return env, nil
}

// Stop stops the node simulator and the control plane and removes the
// temporary directory.
func (e *Env) Stop() error {
	if e.cancel != nil {
		e.cancel()
		<-e.done
	}
	err := e.cp.Stop()
	if rmErr := os.RemoveAll(e.dir); err == nil {
		err = rmErr
	}
	return err
}

// AddGPUNode creates a Ready simulated GPU node. Cluster defaults to
// v1alpha1.DefaultCluster.
func (e *Env) AddGPUNode(ctx context.Context, n GPUNode) (*corev1.Node, error) {
	if n.Cluster == "" {
		n.Cluster = v1alpha1.DefaultCluster
	}
	return e.Nodes.AddNode(ctx, n)
}

// SetNodeReady sets a simulated node's Ready condition.
func (e *Env) SetNodeReady(ctx context.Context, name string, ready bool) error {
	return e.Nodes.SetReady(ctx, name, ready)
}

// StopAPIServer stops the kube-apiserver (etcd keeps its state), as an
// outage of the cluster's API server; StartAPIServer brings it back.
func (e *Env) StopAPIServer() error { return e.cp.StopAPIServer() }

// StartAPIServer starts the kube-apiserver StopAPIServer stopped, on the
// same address, and waits until it is ready.
func (e *Env) StartAPIServer(ctx context.Context) error { return e.cp.StartAPIServer(ctx) }

// Err reports a control-plane process that died during the tests.
func (e *Env) Err() error { return e.cp.Err() }

// Main starts one control plane for the test package, stores it in *env,
// runs the tests and stops it. Set GPUSPACE_TESTENV_KEEP=1 to keep the
// state directory (logs) of a failing run.
func Main(m *testing.M, env **Env, opts ...Option) {
	os.Exit(run(m, env, opts...))
}

func run(m *testing.M, env **Env, opts ...Option) int {
	flag.Parse() // testing.Verbose needs parsed flags; m.Run would parse them anyway
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	e, err := Start(ctx, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: start control plane: %v\n", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "testenv: control plane ready in %s (%s)\n", time.Since(start).Round(time.Millisecond), e.dir)
	}
	*env = e
	code := m.Run()
	if code != 0 && os.Getenv("GPUSPACE_TESTENV_KEEP") != "" {
		e.cancel()
		<-e.done
		_ = e.cp.Stop()
		fmt.Fprintf(os.Stderr, "testenv: kept %s\n", e.dir)
		return code
	}
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stop: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
