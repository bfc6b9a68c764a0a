// Package controlplane runs a local Kubernetes control plane: a real etcd
// and a real kube-apiserver 1.37.1 (optionally kube-controller-manager) as
// child processes built from the pinned modules, with their own PKI, an
// admin kubeconfig and the gpuspace CRDs installed.
//
// It is what `gpuspace dev` boots and what internal/dev/testenv starts once per
// test package. Nothing here imports k8s.io/kubernetes: the heavy binaries
// are separate programs, so the packages that use this one build fast.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/gpuspace/gpuspace/internal/util/kubeclient"
)

// Config says how to run a control plane.
type Config struct {
	// Dir holds the PKI, etcd's data, logs and the admin kubeconfig. It is
	// created if missing. Required.
	Dir string
	// BinDir holds etcd and kube-apiserver; default BinDir().
	BinDir string
	// APIServerPort is the apiserver's loopback port; 0 picks a free one.
	APIServerPort int
	// Durable keeps etcd's fsync on. Tests leave it off: they need speed,
	// not crash durability.
	Durable bool
	// KeepData reuses etcd data already in Dir instead of starting empty.
	KeepData bool
	// ControllerManager also runs kube-controller-manager (namespaces,
	// ReplicaSets, Deployments, garbage collection, service-account tokens).
	ControllerManager bool
	// DisableAdmissionPlugins are turned off in the apiserver. Tests turn
	// off ServiceAccount when no controller-manager creates default
	// ServiceAccounts.
	DisableAdmissionPlugins []string
	// ExtraAPIServerArgs are appended to the apiserver's flags.
	ExtraAPIServerArgs []string
	// Progress, if set, is told each boot step as it starts.
	Progress func(step string)
	// StartTimeout bounds the whole boot; default 120s: a kube-apiserver booting on a busy 2-core CI machine has taken over 60 s.
	StartTimeout time.Duration
}

// ControlPlane is a running local control plane.
type ControlPlane struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// KubeconfigPath is the admin kubeconfig written to Dir.
	KubeconfigPath string
	// URL of the kube-apiserver.
	URL string
	// CAData is the PEM CA that signed the apiserver's certificate.
	CAData []byte
	// Dir is the state directory.
	Dir string

	procs []*process
	logs  []io.Closer
	// restartAPIServer starts the apiserver again as Start did (same port,
	// PKI and etcd); apiServer is its process.
	restartAPIServer func(ctx context.Context) error
	apiServer        *process
	// restartEtcd starts etcd again on its data (same ports); etcd is its
	// process.
	restartEtcd func(ctx context.Context) error
	etcd        *process
	stopOnce    sync.Once
	stopErr     error
}

// Start boots etcd, kube-apiserver (and kube-controller-manager if asked),
// waits until the apiserver is ready, writes the admin kubeconfig and
// installs the gpuspace CRDs. On error everything already started is
// stopped.
func Start(ctx context.Context, cfg Config) (_ *ControlPlane, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("controlplane: Dir is required")
	}
	if cfg.BinDir == "" {
		cfg.BinDir = BinDir()
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 120 * time.Second
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	cp := &ControlPlane{Dir: dir}
	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()

	bins := []Binary{EtcdBinary, APIServerBinary}
	if cfg.ControllerManager {
		bins = append(bins, ControllerManagerBinary)
	}
	progress("checking binaries in " + cfg.BinDir)
	if err := EnsureBinaries(ctx, cfg.BinDir, bins...); err != nil {
		return nil, err
	}

	progress("generating certificates")
	p, err := loadOrCreatePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	cp.CAData = p.CAPEM

	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]
	if cfg.APIServerPort != 0 {
		apiPort = cfg.APIServerPort
	}

	progress("starting etcd")
	etcdURL := "http://127.0.0.1:" + itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + itoa(peerPort)
	if err := cp.startEtcd(ctx, cfg, etcdURL, peerURL); err != nil {
		return nil, err
	}
	cp.restartEtcd = func(ctx context.Context) error {
		again := cfg
		again.KeepData = true // a restart keeps what etcd stored
		return cp.startEtcd(ctx, again, etcdURL, peerURL)
	}

	progress("starting kube-apiserver")
	cp.URL = "https://127.0.0.1:" + itoa(apiPort)
	if err := cp.startAPIServer(ctx, cfg, p, etcdURL, apiPort); err != nil {
		return nil, err
	}
	cp.restartAPIServer = func(ctx context.Context) error {
		if err := cp.startAPIServer(ctx, cfg, p, etcdURL, apiPort); err != nil {
			return err
		}
		return cp.waitReady(ctx)
	}
	// The same client limits as `gpuspace serve` at its defaults.
	cp.Config = kubeclient.WithLimits(&rest.Config{
		Host: cp.URL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   p.CAPEM,
			CertData: p.AdminCertPEM,
			KeyData:  p.AdminKeyPEM,
		},
	}, 0, 0)
	if err := cp.waitReady(ctx); err != nil {
		return nil, err
	}

	cp.KubeconfigPath = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(cp.KubeconfigPath, cp.URL, p); err != nil {
		return nil, err
	}

	if cfg.ControllerManager {
		progress("starting kube-controller-manager")
		if err := cp.startControllerManager(cfg, p); err != nil {
			return nil, err
		}
	}

	progress("installing CRDs")
	if err := InstallCRDs(ctx, cp.Config); err != nil {
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) startEtcd(ctx context.Context, cfg Config, clientURL, peerURL string) error {
	dataDir := filepath.Join(cp.Dir, "etcd")
	if !cfg.KeepData {
		if err := os.RemoveAll(dataDir); err != nil {
			return fmt.Errorf("clear etcd data: %w", err)
		}
	}
	args := []string{
		"--name=gpuspace",
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=gpuspace=" + peerURL,
		"--log-level=warn",
		"--quota-backend-bytes=2147483648",
	}
	if !cfg.Durable {
		args = append(args, "--unsafe-no-fsync")
	}
	p, err := cp.spawn("etcd", filepath.Join(cfg.BinDir, EtcdBinary.Name), args)
	cp.etcd = p
	if err != nil {
		return err
	}
	return waitFor(ctx, p, "etcd health", func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("etcd /health: %s", resp.Status)
		}
		return nil
	})
}

func (cp *ControlPlane) startAPIServer(ctx context.Context, cfg Config, p *pki, etcdURL string, port int) error {
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + itoa(port),
		// The advertise address is loopback, which the default endpoint
		// reconciler refuses to publish.
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(cp.Dir, "apiserver-certs"),
		"--tls-cert-file=" + p.ServingCertFile,
		"--tls-private-key-file=" + p.ServingKeyFile,
		"--client-ca-file=" + p.CAFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + p.SAPubFile,
		"--service-account-signing-key-file=" + p.SAKeyFile,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	}
	if len(cfg.DisableAdmissionPlugins) > 0 {
		args = append(args, "--disable-admission-plugins="+strings.Join(cfg.DisableAdmissionPlugins, ","))
	}
	args = append(args, cfg.ExtraAPIServerArgs...)
	proc, err := cp.spawn("kube-apiserver", filepath.Join(cfg.BinDir, APIServerBinary.Name), args)
	cp.apiServer = proc
	return err
}

// StopAPIServer stops the kube-apiserver (etcd keeps running), as an
// outage of the cluster's API server: tests of partitions use it.
func (cp *ControlPlane) StopAPIServer() error {
	return cp.endAPIServer(func(p *process) error { return p.stop(10 * time.Second) })
}

// endAPIServer ends the kube-apiserver with end; stopped when asked, it is
// no longer one of the processes Err watches.
func (cp *ControlPlane) endAPIServer(end func(*process) error) error {
	if cp.apiServer == nil {
		return errors.New("controlplane: no kube-apiserver running")
	}
	err := end(cp.apiServer)
	cp.forget(cp.apiServer)
	cp.apiServer = nil
	return err
}

// KillAPIServer kills the kube-apiserver with SIGKILL, as a crash: no
// graceful shutdown, watches cut mid-stream. StartAPIServer brings it
// back.
func (cp *ControlPlane) KillAPIServer() error { return cp.endAPIServer((*process).kill) }

// KillEtcd kills etcd with SIGKILL, as a crash; the kube-apiserver keeps
// running and fails its requests until StartEtcd brings etcd back on the
// same data and ports.
func (cp *ControlPlane) KillEtcd() error {
	if cp.etcd == nil {
		return errors.New("controlplane: no etcd running")
	}
	err := cp.etcd.kill()
	cp.forget(cp.etcd)
	cp.etcd = nil
	return err
}

// StartEtcd starts the etcd KillEtcd killed, on the same data and ports,
// and waits until it is healthy.
func (cp *ControlPlane) StartEtcd(ctx context.Context) error {
	if cp.etcd != nil {
		return errors.New("controlplane: etcd is running")
	}
	return cp.restartEtcd(ctx)
}

// forget drops a process stopped or killed when asked from those Err
// watches.
func (cp *ControlPlane) forget(p *process) {
	cp.procs = slices.DeleteFunc(cp.procs, func(q *process) bool { return q == p })
}

// StartAPIServer starts the kube-apiserver StopAPIServer or KillAPIServer
// ended, on the
// same port, and waits until it is ready.
func (cp *ControlPlane) StartAPIServer(ctx context.Context) error {
	if cp.apiServer != nil {
		return errors.New("controlplane: kube-apiserver is running")
	}
	return cp.restartAPIServer(ctx)
}

func (cp *ControlPlane) startControllerManager(cfg Config, p *pki) error {
	args := []string{
		"--kubeconfig=" + cp.KubeconfigPath,
		"--authentication-kubeconfig=" + cp.KubeconfigPath,
		"--authorization-kubeconfig=" + cp.KubeconfigPath,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file=" + p.SAKeyFile,
		"--root-ca-file=" + p.CAFile,
		// Node IPAM and volume controllers have nothing to do here.
		"--controllers=*,-nodeipam,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ephemeral-volume",
		"--v=1",
	}
	_, err := cp.spawn("kube-controller-manager", filepath.Join(cfg.BinDir, ControllerManagerBinary.Name), args)
	return err
}

// Spawn runs another program as part of the control plane: its output goes
// to <Dir>/<name>.log, Err reports it if it exits, and Stop stops it
// (before the processes started earlier).
func (cp *ControlPlane) Spawn(name, path string, args ...string) error {
	_, err := cp.spawn(name, path, args)
	return err
}

func (cp *ControlPlane) spawn(name, path string, args []string) (*process, error) {
	logf, err := openLog(filepath.Join(cp.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cp.logs = append(cp.logs, logf)
	p, err := startProcess(name, path, args, logf)
	if err != nil {
		return nil, err
	}
	cp.procs = append(cp.procs, p)
	return p, nil
}

func (cp *ControlPlane) waitReady(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	err = waitFor(ctx, cp.apiServer, "kube-apiserver /readyz", func(ctx context.Context) error {
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w (see %s)", err, filepath.Join(cp.Dir, "kube-apiserver.log"))
	}
	return nil
}

// Err reports the first child process that exited unasked, or nil.
func (cp *ControlPlane) Err() error {
	for _, p := range cp.procs {
		if err := p.exited(); err != nil {
			return err
		}
	}
	return nil
}

// Stop terminates the processes in reverse start order. It is safe to call
// more than once.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() {
		var errs []error
		for i := len(cp.procs) - 1; i >= 0; i-- {
			errs = append(errs, cp.procs[i].stop(10*time.Second))
		}
		for _, l := range cp.logs {
			errs = append(errs, l.Close())
		}
		cp.stopErr = errors.Join(errs...)
	})
	return cp.stopErr
}

func writeKubeconfig(path, server string, p *pki) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["gpuspace-dev"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.CAPEM}
	cfg.AuthInfos["gpuspace-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: p.AdminCertPEM, ClientKeyData: p.AdminKeyPEM}
	cfg.Contexts["gpuspace-dev"] = &clientcmdapi.Context{Cluster: "gpuspace-dev", AuthInfo: "gpuspace-admin"}
	cfg.CurrentContext = "gpuspace-dev"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return os.Chmod(path, 0o600)
}
