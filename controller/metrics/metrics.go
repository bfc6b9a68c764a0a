// Package metrics holds the Prometheus metrics of gpuspace's controllers.
// They are registered with controller-runtime's registry, so they are served
// on the manager's metrics endpoint beside controller-runtime's own, and by
// any handler that serves sigs.k8s.io/controller-runtime/pkg/metrics.Registry.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// QueueLength is the number of queued GPRs per workspace.
	QueueLength = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gpuspace",
		Name:      "gpr_queue_length",
		Help:      "Queued GPU provision requests per workspace.",
	}, []string{"workspace"})

	// WaitSeconds is how long GPRs waited between creation and
	// provisioning.
	WaitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "gpuspace",
		Name:      "gpr_wait_seconds",
		Help:      "Time GPU provision requests waited in the queue before they were provisioned.",
		// 10s to about 11 days.
		Buckets: prometheus.ExponentialBuckets(10, 4, 10),
	})

	// StartEstimateError is, for each GPR that starts, its actual start
	// minus the likely start estimated when it was admitted
	// (status.firstEstimatedStartTime): positive when it started later
	// than its user was told. By cluster and GPU shape ("any" when the
	// GPR names none).
	StartEstimateError = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "gpuspace",
		Name:      "gpr_start_estimate_error_seconds",
		Help:      "Actual start minus the likely start estimated at admission, per started GPR (positive: later than estimated).",
		Buckets:   []float64{-86400, -14400, -3600, -600, -60, -1, 1, 60, 600, 3600, 14400, 86400},
	}, []string{"cluster", "shape"})

	// ProvisionedGPUs is the number of GPUs held by provisioned GPRs.
	ProvisionedGPUs = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "gpuspace",
		Name:      "provisioned_gpus",
		Help:      "GPUs allocated to provisioned GPU provision requests.",
	})

	// ProvisionedGPRs is the number of provisioned GPRs.
	ProvisionedGPRs = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "gpuspace",
		Name:      "provisioned_gprs",
		Help:      "GPU provision requests that hold nodes now.",
	})

	// StatusWrites counts GPR status writes by kind: "decision" (start,
	// release, fail, admit) or "estimate" (a moved estimate). Writes are the
	// budget the kube-apiserver sets; this shows where it goes.
	StatusWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gpuspace",
		Name:      "gpr_status_writes_total",
		Help:      "GPU provision request status writes, by kind (decision or estimate).",
	}, []string{"kind"})

	// PassErrors counts failures of a GPR pass's steps for one object (a
	// refused status write, a node that cannot be bound), by step: the
	// pass goes on for the other objects.
	PassErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gpuspace",
		Name:      "pass_errors_total",
		Help:      "Failures of a GPR plan pass's steps for one object, by step (admit, release, start, evict, recover, status, bind, plan); the pass went on for the rest.",
	}, []string{"step"})
	// StrayPodsEvicted counts GPU pods of another workspace (or of none)
	// deleted from a bound node.
	StrayPodsEvicted = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "gpuspace",
		Name:      "stray_pods_evicted_total",
		Help:      "GPU pods of another workspace, or of none, deleted from nodes bound to a workspace.",
	})
	// ReconcileErrors counts failed reconciles per controller.
	ReconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gpuspace",
		Name:      "reconcile_errors_total",
		Help:      "Reconciles of gpuspace controllers that returned an error.",
	}, []string{"controller"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(QueueLength, WaitSeconds, StartEstimateError, ProvisionedGPUs, ProvisionedGPRs, StatusWrites, ReconcileErrors, PassErrors, StrayPodsEvicted)
}
