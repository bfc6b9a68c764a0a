package health

import (
	"slices"
	"sync"

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

// EventLog is a Recorder that keeps the events it is given as
// "Type/Reason", for tests.
type EventLog struct {
	mu     sync.Mutex
	events []string
}

// Event implements Recorder.
func (l *EventLog) Event(eventType, reason, _ string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, eventType+"/"+reason)
}

// Has reports whether an event "Type/Reason" was recorded.
func (l *EventLog) Has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.events, s)
}

// Take returns the events recorded since the last Take.
func (l *EventLog) Take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}
