package health

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// recorderFunc adapts a function to Recorder.
type recorderFunc func(eventType, reason, message string)

func (f recorderFunc) Event(eventType, reason, message string) { f(eventType, reason, message) }

// NewNodeRecorder returns a Recorder of Kubernetes events about the node,
// made the way the kubelet makes its node events (in the default
// namespace, the node's UID being its name), and a function that flushes
// and stops it.
func NewNodeRecorder(kube kubernetes.Interface, node string) (Recorder, func()) {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	rec := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "gpuspace-device-plugin", Host: node})
	ref := &corev1.ObjectReference{Kind: "Node", Name: node, UID: types.UID(node)}
	return recorderFunc(func(eventType, reason, message string) {
		rec.Event(ref, eventType, reason, message)
	}), b.Shutdown
}
