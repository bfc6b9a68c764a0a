// Package apiserver serves gpuspace's /api/v1 REST API: the EGS-compatible
// slice workspace, inventory, GPR and API key operations, with huma v2 on
// net/http, the EGS envelope on every answer, bearer-token auth and roles.
//
// It holds no state: reads come from informer caches, writes go to the
// kube-apiserver as Workspace and GPUProvisionRequest objects and Secrets.
// Each operation is declared once (an Op: route, roles, workspace scope,
// MCP hints) and registered with huma.Register; the declaration travels in
// Operation.Metadata (OpOf reads it), so the auth middleware enforces the
// roles, the scope check in front of each handler the workspace scope, and
// the MCP layer lists operations from API() and calls them through Do,
// which runs the very handler chain HTTP clients get.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/internal/domain"
	"github.com/gpuspace/gpuspace/internal/util/index"
	"github.com/gpuspace/gpuspace/internal/view"
)

// Config is what the API needs to run.
type Config struct {
	// RESTConfig reaches the kube-apiserver with the rights of the gpuspace
	// control plane. Required.
	RESTConfig *rest.Config
	// Namespace holds API key Secrets and the token signing key; default
	// auth.DefaultNamespace (gpuspace-system). It is created if missing.
	Namespace string
	// TokenTTL is the lifetime of /auth bearer tokens; default 15 minutes.
	TokenTTL time.Duration
	// KubeconfigTokenTTL is the lifetime of the ServiceAccount tokens in
	// workspace kubeconfigs; default 8 hours, at least 10 minutes.
	KubeconfigTokenTTL time.Duration
	// KubeconfigServer is the kube-apiserver URL written into workspace
	// kubeconfigs (the one users reach); default RESTConfig.Host.
	KubeconfigServer string
	// KubeconfigCAData is the PEM CA written into workspace kubeconfigs;
	// default RESTConfig's CA.
	KubeconfigCAData []byte
	// DefaultCluster is the cluster of nodes without a gpuspace.io/cluster
	// label (gpuspace's --cluster-name); default v1alpha1.DefaultCluster.
	DefaultCluster string
	// MaxBodyBytes bounds request bodies; default 1 MiB.
	MaxBodyBytes int64
	// Version is reported in the OpenAPI document; default "dev".
	Version string
	// GPUPrices are USD per GPU-hour by GPU shape (gpuspace serve
	// --gpu-price): a provisioned GPR's cost is computed on read from
	// them; none: costs are empty.
	GPUPrices domain.Prices
	// OIDC, when set, makes the API accept that provider's ID tokens
	// beside its own bearer tokens (single sign-on; auth.OIDC).
	OIDC *auth.OIDCConfig
}

// Option changes how the server is built.
type Option func(*options)

type options struct {
	logger     *zap.Logger
	cache      cache.Cache
	registerer prometheus.Registerer
	gatherer   prometheus.Gatherer
	now        func() time.Time
	// kubeconfigReadyWait bounds kube-config's wait for a new workspace.
	kubeconfigReadyWait time.Duration
	// clusters are the worker clusters (WithClusters).
	clusters Clusters
}

// WithLogger sets the logger (default: no logging).
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// WithCache makes the API read from c instead of building its own informer
// cache. c must serve Workspaces, GPUProvisionRequests, Nodes, and the API
// key Secrets of Config.Namespace, and have the spec.workspace field index
// on GPUProvisionRequests (internal/util/index.GPRWorkspace; controller.Setup
// adds it to a manager's cache). The caller starts it.
func WithCache(c cache.Cache) Option { return func(o *options) { o.cache = c } }

// WithMetrics registers the API's metrics with reg and serves g on
// /metrics. Default: a registry of the server's own, with Go and process
// collectors. `gpuspace serve` passes controller-runtime's registry so one
// /metrics shows the controllers and the API.
func WithMetrics(reg prometheus.Registerer, g prometheus.Gatherer) Option {
	return func(o *options) { o.registerer, o.gatherer = reg, g }
}

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithKubeconfigReadyWait sets how long kube-config waits, at most, for a
// workspace created a moment ago to become usable (default
// DefaultKubeconfigReadyWait; 0 or less: the default).
func WithKubeconfigReadyWait(d time.Duration) Option {
	return func(o *options) { o.kubeconfigReadyWait = d }
}

// Server is the /api/v1 API.
type Server struct {
	cfg     Config
	opts    options
	log     *zap.Logger
	scheme  *runtime.Scheme
	client  client.Client // writes and live reads
	cache   cache.Cache   // reads
	ownCach bool
	kube    kubernetes.Interface
	api     huma.API
	mux     *http.ServeMux
	handler http.Handler
	metrics *metrics
	auth    atomic.Pointer[auth.Authenticator]
	ready   atomic.Bool
	started atomic.Bool
	view    *view.View
	// events is GET /events's broadcaster (registerEvents).
	events *broadcaster
}

// New builds the API. It does not start anything: call Start (or add the
// server to a controller-runtime manager, it is a Runnable) and serve
// Handler.
func New(cfg Config, opts ...Option) (*Server, error) {
	if cfg.RESTConfig == nil {
		return nil, errors.New("apiserver: Config.RESTConfig is required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = auth.DefaultNamespace
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = auth.DefaultTokenTTL
	}
	if cfg.KubeconfigTokenTTL <= 0 {
		cfg.KubeconfigTokenTTL = 8 * time.Hour
	}
	if cfg.KubeconfigTokenTTL < 10*time.Minute {
		return nil, fmt.Errorf("apiserver: KubeconfigTokenTTL %s is below the apiserver's minimum of 10m", cfg.KubeconfigTokenTTL)
	}
	if cfg.KubeconfigServer == "" {
		cfg.KubeconfigServer = cfg.RESTConfig.Host
	}
	if len(cfg.KubeconfigCAData) == 0 {
		cfg.KubeconfigCAData = cfg.RESTConfig.CAData
		if len(cfg.KubeconfigCAData) == 0 && cfg.RESTConfig.CAFile != "" {
			b, err := os.ReadFile(cfg.RESTConfig.CAFile)
			if err != nil {
				return nil, fmt.Errorf("apiserver: read CA file: %w", err)
			}
			cfg.KubeconfigCAData = b
		}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.DefaultCluster == "" {
		cfg.DefaultCluster = v1alpha1.DefaultCluster
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	o := options{logger: zap.NewNop(), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.kubeconfigReadyWait <= 0 {
		o.kubeconfigReadyWait = DefaultKubeconfigReadyWait
	}

	s := &Server{cfg: cfg, opts: o, log: o.logger}
	s.scheme = runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s.scheme); err != nil {
		return nil, fmt.Errorf("apiserver: scheme: %w", err)
	}
	if err := v1alpha1.AddToScheme(s.scheme); err != nil {
		return nil, fmt.Errorf("apiserver: scheme: %w", err)
	}
	var err error
	s.client, err = client.New(cfg.RESTConfig, client.Options{Scheme: s.scheme})
	if err != nil {
		return nil, fmt.Errorf("apiserver: client: %w", err)
	}
	s.kube, err = kubernetes.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return nil, fmt.Errorf("apiserver: clientset: %w", err)
	}
	if o.cache != nil {
		s.cache = o.cache
	} else {
		s.cache, err = NewCache(cfg.RESTConfig, s.scheme, cfg.Namespace)
		if err != nil {
			return nil, err
		}
		s.ownCach = true
	}
	if o.registerer == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
		o.registerer, o.gatherer = reg, reg
		s.opts = o
	}
	var workers view.Workers
	if o.clusters != nil {
		workers = o.clusters
	}
	s.view = view.New(view.Config{Cache: s.cache, Live: s.client, Now: o.now, Prices: cfg.GPUPrices, DefaultCluster: cfg.DefaultCluster, Workers: workers})
	s.metrics, err = newMetrics(o.registerer)
	if err != nil {
		return nil, err
	}
	s.build()
	return s, nil
}

// NewCache builds the informer cache the API reads from when it has none
// to share: CacheOptions, plus the spec.workspace index.
func NewCache(cfg *rest.Config, scheme *runtime.Scheme, namespace string) (cache.Cache, error) {
	o := CacheOptions(namespace)
	o.Scheme = scheme
	c, err := cache.New(cfg, o)
	if err != nil {
		return nil, fmt.Errorf("apiserver: cache: %w", err)
	}
	if err := index.AddGPRWorkspace(context.Background(), c); err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	return c, nil
}

// CacheOptions are the settings a cache the API reads from needs: of all
// Secrets, only the API key and signing key Secrets of namespace (the API
// never reads another, and caching every Secret in the cluster would hold
// their contents in memory). Workspaces, GPUProvisionRequests and Nodes are
// cached, all without managedFields. A shared cache (WithCache) built
// from these options also needs index.GPRWorkspace (controller.Setup adds
// it to the manager's).
func CacheOptions(namespace string) cache.Options {
	keySecrets, err := labels.NewRequirement(auth.LabelAPIKey, selection.In, []string{auth.LabelValueKey, auth.LabelValueSigningKey})
	if err != nil {
		panic(err) // constant, valid label values
	}
	sel := labels.NewSelector().Add(*keySecrets)
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Namespaces: map[string]cache.Config{namespace: {}}, Label: sel},
		},
		ReaderFailOnMissingInformer: false,
		// Nothing reads managedFields from the cache; without them every
		// cached object is smaller and every Get copies less.
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// Start prepares what the API needs — its namespace, the token signing key,
// synced caches — marks the server ready and blocks until ctx ends. It
// implements controller-runtime's manager.Runnable; the API serves on every
// replica, so it needs no leader election.
func (s *Server) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("apiserver: already started")
	}
	if err := s.ensureNamespace(ctx); err != nil {
		return err
	}
	if err := auth.EnsureSigningKey(ctx, s.client, s.cfg.Namespace); err != nil {
		return fmt.Errorf("apiserver: %w", err)
	}
	keys, err := auth.NewSecretKeySource(ctx, s.cache, s.client, s.cfg.Namespace)
	if err != nil {
		return fmt.Errorf("apiserver: %w", err)
	}
	a := auth.NewAuthenticator(keys, s.cache, s.client, s.cfg.Namespace, s.cfg.TokenTTL, s.opts.now)
	if s.cfg.OIDC != nil {
		a.SetOIDC(auth.NewOIDC(*s.cfg.OIDC, s.client, s.cfg.Namespace, s.opts.now))
	}
	s.auth.Store(a)

	cacheErr := make(chan error, 1)
	if s.ownCach {
		go func() { cacheErr <- s.cache.Start(ctx) }()
	}
	// Ask for every informer now, so none starts lazily on a request.
	for _, obj := range []client.Object{&v1alpha1.Workspace{}, &v1alpha1.GPUProvisionRequest{}, &corev1.Node{}, &corev1.Secret{}} {
		inf, err := s.cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("apiserver: informer for %T: %w", obj, err)
		}
		if _, secret := obj.(*corev1.Secret); secret {
			continue
		}
		// Any change of these may move the plan reads take estimates from.
		if _, err := inf.AddEventHandler(s.view.Handler()); err != nil {
			return fmt.Errorf("apiserver: event handler for %T: %w", obj, err)
		}
	}
	if !s.cache.WaitForCacheSync(ctx) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("apiserver: caches did not sync")
	}
	s.ready.Store(true)
	s.log.Info("API ready", zap.String("namespace", s.cfg.Namespace))
	select {
	case <-ctx.Done():
		s.ready.Store(false)
		return nil
	case err := <-cacheErr:
		s.ready.Store(false)
		if err != nil {
			return fmt.Errorf("apiserver: cache: %w", err)
		}
		return nil
	}
}

// NeedLeaderElection is false: every replica serves the API.
func (s *Server) NeedLeaderElection() bool { return false }

func (s *Server) ensureNamespace(ctx context.Context) error {
	ns := &corev1.Namespace{}
	ns.Name = s.cfg.Namespace
	err := s.client.Create(ctx, ns)
	if err == nil || isAlreadyExists(err) {
		return nil
	}
	// A locked-down install may not let gpuspace create namespaces; the
	// manifests create it then.
	if getErr := s.client.Get(ctx, client.ObjectKeyFromObject(ns), ns); getErr == nil {
		return nil
	}
	return fmt.Errorf("apiserver: create namespace %s: %w", s.cfg.Namespace, err)
}

// Ready reports whether Start has synced the caches.
func (s *Server) Ready() bool { return s.ready.Load() }

// Handler is the whole HTTP surface: /api/v1, health, metrics, OpenAPI and
// docs, wrapped in panic recovery and the envelope 404/405.
func (s *Server) Handler() http.Handler { return s.handler }

// CloseStreams ends every open event stream (GET /api/v1/events) and
// refuses new ones. A stream never goes idle by itself, so a graceful HTTP
// shutdown would wait for it until its deadline: register this with
// http.Server.RegisterOnShutdown. EventSource clients reconnect, to another
// replica or the next process, and resume from their Last-Event-ID.
func (s *Server) CloseStreams() { s.events.close() }

// Mux is the ServeMux behind Handler, for mounting more routes (e.g. /mcp)
// under the same listener and middleware.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// API is the huma API with every operation registered.
func (s *Server) API() huma.API { return s.api }

// Do runs r through the full handler chain in memory — recovery, routing,
// auth and roles, validation, the handler, the envelope — and returns the
// recorded response. The MCP layer calls operations through it.
func (s *Server) Do(r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, r)
	return rec.Result()
}

// Authenticate verifies a bearer token (without "Bearer ") and returns its
// principal. It fails before Start has loaded the signing key.
func (s *Server) Authenticate(ctx context.Context, token string) (*auth.Principal, error) {
	a := s.auth.Load()
	if a == nil {
		return nil, errors.New("apiserver: not started")
	}
	return a.Verify(ctx, token)
}

// Allowed reports whether p may call op by role (the workspace scope is
// checked on each call, once it names a workspace). MCP uses it to filter
// tools/list.
func Allowed(p *auth.Principal, op *huma.Operation) bool {
	roles := OperationRoles(op)
	if len(roles) == 0 {
		return true
	}
	return p.Allowed(roles)
}

// Operations returns every operation registered on api, by OperationID.
func Operations(api huma.API) []*huma.Operation {
	var ops []*huma.Operation
	for _, item := range api.OpenAPI().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch, item.Head, item.Options} {
			if op != nil {
				ops = append(ops, op)
			}
		}
	}
	slices.SortFunc(ops, func(a, b *huma.Operation) int { return strings.Compare(a.OperationID, b.OperationID) })
	return ops
}

// OperationRoles returns the roles an operation allows; nil means public.
func OperationRoles(op *huma.Operation) []auth.Role {
	if o := OpOf(op); o != nil {
		return o.Roles()
	}
	return nil
}

func (s *Server) authenticator() *auth.Authenticator { return s.auth.Load() }

func (s *Server) now() time.Time { return s.opts.now() }

// Describe returns a huma API with every operation registered and nothing
// behind it — no clients, no cache — for listing operations, their schemas
// and metadata without a cluster (MCP tool descriptions for a remote
// server, writing the OpenAPI document at build time). Its handlers must
// not be called.
func Describe(version string) huma.API {
	if version == "" {
		version = "dev"
	}
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		panic(err) // a fresh registry takes every collector
	}
	s := &Server{
		cfg:     Config{MaxBodyBytes: 1 << 20, Version: version, Namespace: auth.DefaultNamespace},
		opts:    options{logger: zap.NewNop(), now: time.Now, registerer: reg, gatherer: reg},
		log:     zap.NewNop(),
		metrics: m,
	}
	s.build()
	return s.api
}
