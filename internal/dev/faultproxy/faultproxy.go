// Package faultproxy is a fault-injecting reverse proxy in front of a real
// kube-apiserver, for fault tests: the components under test reach the
// apiserver through it (RESTConfig, WriteKubeconfig), and it fails a share
// of their writes with 500, 429 or a timeout, loses the response of some
// writes it did forward, delays responses and cuts watch streams mid-way.
//
// What it injects is decided by a seed, not by arrival order: the fault of
// a request is a hash of the seed, the request's method and path, and how
// many requests with that method and path came before it. The same seed
// and the same requests per object inject the same faults, however the
// requests of different objects interleave.
//
// It serves TLS on loopback with a certificate of its own (CAData) and
// forwards with the upstream configuration's credentials, so every client
// of the proxy acts with those credentials.
package faultproxy

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kind is a kind of fault the proxy injects.
type Kind string

// The kinds of fault.
const (
	// Error500 answers a write with 500 Internal Server Error without
	// forwarding it.
	Error500 Kind = "error-500"
	// Throttle429 answers a write with 429 Too Many Requests and
	// Retry-After: 1, as API Priority and Fairness does, without
	// forwarding it.
	Throttle429 Kind = "throttle-429"
	// Timeout holds a write for Rates.TimeoutHold without forwarding it,
	// then answers 504 Gateway Timeout.
	Timeout Kind = "timeout"
	// LostResponse forwards a write, drops the apiserver's answer and
	// answers 504: the write happened, the client does not know it.
	LostResponse Kind = "lost-response"
	// Delay holds a request (not a watch) for up to Rates.MaxDelay before
	// forwarding it.
	Delay Kind = "delay"
	// WatchCut aborts a watch stream after up to Rates.MaxWatchLife.
	WatchCut Kind = "watch-cut"
)

// Kinds lists every kind, in the order reports show them.
var Kinds = []Kind{Error500, Throttle429, Timeout, LostResponse, Delay, WatchCut}

// Rates say how often each fault happens. Shares are of the requests they
// apply to: the write faults (Error500, Throttle429, Timeout,
// LostResponse) of POST, PUT, PATCH and DELETE requests, together at most
// 1; Delay of every request but watches; WatchCut of watches.
type Rates struct {
	Error500, Throttle429, Timeout, LostResponse float64
	Delay                                        float64
	WatchCut                                     float64
	// MaxDelay bounds a Delay; default 200ms.
	MaxDelay time.Duration
	// TimeoutHold is how long a Timeout holds a write; default 1s.
	TimeoutHold time.Duration
	// MaxWatchLife bounds how long a cut watch lives; default 10s.
	MaxWatchLife time.Duration
}

func (r Rates) withDefaults() Rates {
	if r.MaxDelay <= 0 {
		r.MaxDelay = 200 * time.Millisecond
	}
	if r.TimeoutHold <= 0 {
		r.TimeoutHold = time.Second
	}
	if r.MaxWatchLife <= 0 {
		r.MaxWatchLife = 10 * time.Second
	}
	return r
}

func (r Rates) validate() error {
	for _, v := range []float64{r.Error500, r.Throttle429, r.Timeout, r.LostResponse, r.Delay, r.WatchCut} {
		if v < 0 || v > 1 || math.IsNaN(v) {
			return fmt.Errorf("faultproxy: rates must be shares between 0 and 1, got %v", v)
		}
	}
	if w := r.Error500 + r.Throttle429 + r.Timeout + r.LostResponse; w > 1 {
		return fmt.Errorf("faultproxy: write fault shares add up to %v, more than 1", w)
	}
	return nil
}

// Config configures a Proxy.
type Config struct {
	// Upstream reaches the kube-apiserver, with its credentials. Required.
	Upstream *rest.Config
	// Seed decides which requests fail and how.
	Seed int64
	// Rates of each fault.
	Rates Rates
	// Only, if set, limits the faults to the requests it accepts; the
	// others are forwarded unharmed. Nil: every request.
	Only func(*http.Request) bool
	// Logger logs each fault at debug level; default no-op.
	Logger *zap.Logger
}

// Proxy is a running fault proxy.
type Proxy struct {
	url    string
	caPEM  []byte
	srv    *http.Server
	ln     net.Listener
	rp     *httputil.ReverseProxy
	seed   uint64
	log    *zap.Logger
	only   func(*http.Request) bool
	served chan error

	enabled atomic.Bool
	rates   atomic.Pointer[Rates]

	mu      sync.Mutex
	seen    map[string]uint64 // method and path -> requests so far
	counts  map[Kind]int64
	records []Record
}

// Record is one injected fault: when, what, and to which request.
type Record struct {
	At           time.Time
	Kind         Kind
	Method, Path string
}

// Start listens on a loopback port and serves until Close. Faults are on
// from the start; SetEnabled turns them off and on.
func Start(cfg Config) (*Proxy, error) {
	if cfg.Upstream == nil {
		return nil, errors.New("faultproxy: Upstream is required")
	}
	rates := cfg.Rates.withDefaults()
	if err := rates.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	target, err := url.Parse(cfg.Upstream.Host)
	if err != nil || target.Host == "" {
		return nil, fmt.Errorf("faultproxy: upstream host %q: %v", cfg.Upstream.Host, err)
	}
	transport, err := rest.TransportFor(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: upstream transport: %w", err)
	}
	tlsCfg, caPEM, err := servingTLS()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		url:    "https://" + ln.Addr().String(),
		caPEM:  caPEM,
		ln:     ln,
		seed:   uint64(cfg.Seed),
		log:    cfg.Logger,
		only:   cfg.Only,
		served: make(chan error, 1),
		seen:   map[string]uint64{},
		counts: map[Kind]int64{},
	}
	p.rates.Store(&rates)
	p.enabled.Store(true)
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport:     transport,
		FlushInterval: -1, // watches stream event by event
		ErrorLog:      log.New(io.Discard, "", 0),
		ErrorHandler:  p.upstreamError,
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	go func() { p.served <- p.srv.ServeTLS(ln, "", "") }()
	return p, nil
}

// URL is the proxy's https URL.
func (p *Proxy) URL() string { return p.url }

// CAData is the PEM certificate that signs the proxy's serving
// certificate.
func (p *Proxy) CAData() []byte { return p.caPEM }

// RESTConfig reaches the apiserver through the proxy (credentials are the
// proxy's upstream ones).
func (p *Proxy) RESTConfig() *rest.Config {
	return &rest.Config{Host: p.url, TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM}}
}

// WriteKubeconfig writes a kubeconfig file that reaches the apiserver
// through the proxy.
func (p *Proxy) WriteKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["faultproxy"] = &clientcmdapi.Cluster{Server: p.url, CertificateAuthorityData: p.caPEM}
	cfg.AuthInfos["faultproxy"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["faultproxy"] = &clientcmdapi.Context{Cluster: "faultproxy", AuthInfo: "faultproxy"}
	cfg.CurrentContext = "faultproxy"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("faultproxy: write kubeconfig: %w", err)
	}
	return nil
}

// SetEnabled turns the faults on or off; off, the proxy forwards every
// request as it comes.
func (p *Proxy) SetEnabled(on bool) { p.enabled.Store(on) }

// SetRates changes the rates of the faults from now on.
func (p *Proxy) SetRates(r Rates) error {
	r = r.withDefaults()
	if err := r.validate(); err != nil {
		return err
	}
	p.rates.Store(&r)
	return nil
}

// Counts returns how many faults of each kind were injected so far.
func (p *Proxy) Counts() map[Kind]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Kind]int64, len(Kinds))
	for _, k := range Kinds {
		out[k] = p.counts[k]
	}
	return out
}

// Records returns every fault injected so far, in the order injected.
func (p *Proxy) Records() []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Record(nil), p.records...)
}

// Close stops serving; open streams are cut.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	if serr := <-p.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// decision is what the proxy does with one request.
type decision struct {
	fault Kind          // "" forwards the request unharmed
	wait  time.Duration // a Delay's wait, a Timeout's hold, a WatchCut's life
}

// decide draws the fault of the n-th request with this method and path.
// Two independent draws: the write fault (or watch cut) and the delay.
func (p *Proxy) decide(r *http.Request) decision {
	rates := *p.rates.Load()
	key := r.Method + " " + r.URL.Path
	watch := isWatch(r)
	if watch {
		key += "?watch"
	}
	p.mu.Lock()
	n := p.seen[key]
	p.seen[key] = n + 1
	p.mu.Unlock()
	u := p.draw(key, n, 0)
	switch {
	case watch:
		if u < rates.WatchCut {
			return decision{fault: WatchCut, wait: scale(p.draw(key, n, 1), rates.MaxWatchLife)}
		}
		return decision{}
	case isWrite(r.Method):
		for _, band := range []struct {
			kind  Kind
			share float64
		}{{Error500, rates.Error500}, {Throttle429, rates.Throttle429}, {Timeout, rates.Timeout}, {LostResponse, rates.LostResponse}} {
			if u < band.share {
				return decision{fault: band.kind, wait: rates.TimeoutHold}
			}
			u -= band.share
		}
	}
	if p.draw(key, n, 2) < rates.Delay {
		return decision{fault: Delay, wait: scale(p.draw(key, n, 3), rates.MaxDelay)}
	}
	return decision{}
}

// draw is a uniform number in [0, 1) from the seed, the request key, its
// ordinal and which draw of that request it is.
func (p *Proxy) draw(key string, n uint64, which byte) float64 {
	h := fnv.New64a()
	var b [17]byte
	binary.LittleEndian.PutUint64(b[:8], p.seed)
	binary.LittleEndian.PutUint64(b[8:16], n)
	b[16] = which
	_, _ = h.Write(b[:])
	_, _ = h.Write([]byte(key))
	return float64(mix(h.Sum64())>>11) / (1 << 53)
}

// mix is SplitMix64's finaliser: FNV's low bits alone are not uniform
// enough for shares of a few percent.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// scale maps u in [0, 1) to a duration in [max/20, max).
func scale(u float64, max time.Duration) time.Duration {
	return max/20 + time.Duration(u*float64(max-max/20))
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

func isWatch(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	w := r.URL.Query().Get("watch")
	return w == "true" || w == "1"
}

func (p *Proxy) count(k Kind, r *http.Request) {
	p.mu.Lock()
	p.counts[k]++
	p.records = append(p.records, Record{At: time.Now(), Kind: k, Method: r.Method, Path: r.URL.Path})
	p.mu.Unlock()
	p.log.Debug("fault injected", zap.String("kind", string(k)), zap.String("method", r.Method), zap.String("path", r.URL.Path))
}

// serve handles one request: forwards it, or injects its fault.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if !p.enabled.Load() || (p.only != nil && !p.only(r)) {
		p.rp.ServeHTTP(w, r)
		return
	}
	d := p.decide(r)
	switch d.fault {
	case "":
		p.rp.ServeHTTP(w, r)
	case Error500:
		p.count(d.fault, r)
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "fault injected: internal error")
	case Throttle429:
		p.count(d.fault, r)
		w.Header().Set("Retry-After", "1")
		writeStatus(w, http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests, "fault injected: too many requests, please try again later")
	case Timeout:
		p.count(d.fault, r)
		p.hold(r.Context(), d.wait)
		writeStatus(w, http.StatusGatewayTimeout, metav1.StatusReasonTimeout, "fault injected: the request timed out")
	case LostResponse:
		p.count(d.fault, r)
		p.rp.ServeHTTP(discard{header: http.Header{}}, r)
		writeStatus(w, http.StatusGatewayTimeout, metav1.StatusReasonTimeout, "fault injected: the response was lost")
	case Delay:
		p.count(d.fault, r)
		p.hold(r.Context(), d.wait)
		p.rp.ServeHTTP(w, r)
	case WatchCut:
		p.serveCutWatch(w, r, d.wait)
	}
}

// serveCutWatch forwards a watch and aborts the stream after life, unless
// it ended before: the client sees its stream reset mid-way.
func (p *Proxy) serveCutWatch(w http.ResponseWriter, r *http.Request, life time.Duration) {
	ctx, cancel := context.WithTimeout(r.Context(), life)
	defer cancel()
	defer func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			p.count(WatchCut, r)
		}
	}()
	// ReverseProxy aborts the response (http.ErrAbortHandler) when its
	// upstream read fails: the stream is reset, not ended cleanly.
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

func (p *Proxy) hold(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// upstreamError answers a request the apiserver could not be reached for
// (it is down, or the client went away) as a kube-apiserver behind a load
// balancer would look: 503.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		panic(http.ErrAbortHandler) // nobody is reading: reset the stream
	}
	writeStatus(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "apiserver unreachable: "+err.Error())
}

// writeStatus answers with a metav1.Status, as the apiserver does, so
// clients parse the error as they would the apiserver's.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg,
	}
	if reason == metav1.StatusReasonTooManyRequests || reason == metav1.StatusReasonTimeout {
		st.Details = &metav1.StatusDetails{RetryAfterSeconds: 1}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}

// discard is a ResponseWriter that drops the response: a LostResponse's
// forwarded write.
type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}
