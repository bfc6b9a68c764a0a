// Package kubeclient is the one place a gpuspace process sets how hard its
// Kubernetes clients may call the kube-apiserver: `gpuspace serve` (its
// --kube-api-qps and --kube-api-burst flags), `gpuspace dev`, the test
// control planes (internal/dev/controlplane, internal/dev/testenv) and the
// benchmarks all go through WithLimits, so what is measured in a test is
// what runs in production.
package kubeclient

import "k8s.io/client-go/rest"

// DefaultQPS and DefaultBurst are the client-side rate limits of a
// gpuspace control plane, per client built from the configuration.
//
// client-go's own default (5 QPS, burst 10) throttles every plan pass:
// binding one GPR is a status write plus a patch per node, and a shift of
// the queue is a status write per GPR whose estimate moved. At 100 QPS a
// pass that starts a 40-node GPR and releases another (≈ 90 writes) fits
// in the burst of 200 and is not delayed at all; the estimate client
// (which runs at half these limits, so decisions never queue behind it)
// writes 3,000 moved estimates a minute. The apiserver's own limits
// (--max-mutating-requests-inflight 200) stay the bound that protects it. kube-controller-manager defaults to 20/30 for
// far cheaper per-object work, kube-scheduler to 50/100.
const (
	DefaultQPS   float32 = 100
	DefaultBurst int     = 200
)

// WithLimits returns a copy of cfg whose clients are throttled at qps
// requests per second with bursts of burst; zero (or less) means
// DefaultQPS / DefaultBurst. Any rate limiter already on cfg is dropped so
// that the limits take effect: each client built from the copy gets its
// own token bucket.
func WithLimits(cfg *rest.Config, qps float32, burst int) *rest.Config {
	out := rest.CopyConfig(cfg)
	if qps <= 0 {
		qps = DefaultQPS
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	out.QPS, out.Burst = qps, max(burst, 1)
	out.RateLimiter = nil
	return out
}
