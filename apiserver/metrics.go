package apiserver

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	panics   prometheus.Counter
	streams  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpuspace_api_requests_total",
			Help: "API requests by operation and HTTP status code.",
		}, []string{"operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gpuspace_api_request_duration_seconds",
			Help:    "API request latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"operation"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpuspace_api_panics_total",
			Help: "Panics recovered while serving API requests.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gpuspace_api_event_streams",
			Help: "Clients connected to the event stream (GET /api/v1/events).",
		}),
	}
	var err error
	m.requests, err = registerCollector(reg, m.requests)
	if err != nil {
		return nil, err
	}
	m.duration, err = registerCollector(reg, m.duration)
	if err != nil {
		return nil, err
	}
	m.panics, err = registerCollector(reg, m.panics)
	if err != nil {
		return nil, err
	}
	m.streams, err = registerCollector(reg, m.streams)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// registerCollector registers c, or reuses the collector already registered under
// its name (a second Server in the same process, e.g. in tests).
func registerCollector[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("apiserver: register metrics: %w", err)
	}
	return c, nil
}

func (s *Server) metricsMiddleware(ctx huma.Context, next func(huma.Context)) {
	start := time.Now()
	next(ctx)
	op := ctx.Operation().OperationID
	s.metrics.requests.WithLabelValues(op, strconv.Itoa(ctx.Status())).Inc()
	s.metrics.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}
