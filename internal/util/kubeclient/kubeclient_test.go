package kubeclient

import (
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

func TestWithLimits(t *testing.T) {
	base := &rest.Config{Host: "https://example.invalid", QPS: 5, Burst: 10,
		RateLimiter: flowcontrol.NewTokenBucketRateLimiter(1, 1)}
	for _, tt := range []struct {
		name      string
		qps       float32
		burst     int
		wantQPS   float32
		wantBurst int
	}{
		{"defaults", 0, 0, DefaultQPS, DefaultBurst},
		{"negative is default", -1, -1, DefaultQPS, DefaultBurst},
		{"explicit", 300, 600, 300, 600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := WithLimits(base, tt.qps, tt.burst)
			if got.QPS != tt.wantQPS || got.Burst != tt.wantBurst || got.RateLimiter != nil {
				t.Errorf("WithLimits(%v, %v) = QPS %v Burst %v limiter %v; want %v %v nil",
					tt.qps, tt.burst, got.QPS, got.Burst, got.RateLimiter, tt.wantQPS, tt.wantBurst)
			}
			if got.Host != base.Host {
				t.Errorf("Host = %q, want %q", got.Host, base.Host)
			}
		})
	}
	if base.QPS != 5 || base.Burst != 10 || base.RateLimiter == nil {
		t.Errorf("WithLimits changed its argument: %+v", base)
	}
}
