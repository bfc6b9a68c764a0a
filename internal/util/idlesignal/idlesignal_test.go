package idlesignal

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func node(annotations map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: annotations}}
}

func TestRead(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 5, 0, time.UTC)
	tests := []struct {
		name          string
		annotations   map[string]string
		wantSince     time.Time
		wantPublished bool
	}{
		{"no annotation", nil, time.Time{}, false},
		{"busy", map[string]string{Annotation: ""}, time.Time{}, true},
		{"idle", map[string]string{Annotation: "2026-03-01T12:00:05Z"}, at, true},
		{"idle, other zone", map[string]string{Annotation: "2026-03-01T13:00:05+01:00"}, at, true},
		{"garbage", map[string]string{Annotation: "yesterday"}, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			since, published := Read(node(tt.annotations))
			if !since.Equal(tt.wantSince) || published != tt.wantPublished {
				t.Errorf("Read = %v, %v; want %v, %v", since, published, tt.wantSince, tt.wantPublished)
			}
		})
	}
}

func TestIdleFor(t *testing.T) {
	n := node(map[string]string{Annotation: "2026-03-01T12:00:00Z"})
	since := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if d := IdleFor(n, time.Time{}, since.Add(90*time.Second)); d != 90*time.Second {
		t.Errorf("idle for %v, want 90s", d)
	}
	// Counted from the GPR's start when it started later.
	if d := IdleFor(n, since.Add(time.Minute), since.Add(90*time.Second)); d != 30*time.Second {
		t.Errorf("idle for %v since a later start, want 30s", d)
	}
	if d := IdleFor(node(map[string]string{Annotation: ""}), time.Time{}, since); d != 0 {
		t.Errorf("busy node idle for %v", d)
	}
	if d := IdleFor(node(nil), time.Time{}, since); d != 0 {
		t.Errorf("unpublished node idle for %v", d)
	}
}

func TestFormatRoundsUp(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 5, 0, time.UTC)
	for in, want := range map[time.Time]string{
		{}:                                     "",
		at:                                     "2026-03-01T12:00:05Z",
		at.Add(time.Millisecond):               "2026-03-01T12:00:06Z",
		at.In(time.FixedZone("x", 3600)):       "2026-03-01T12:00:05Z",
		at.Add(999 * time.Millisecond):         "2026-03-01T12:00:06Z",
		at.Add(-time.Nanosecond).Round(0):      "2026-03-01T12:00:05Z",
		at.Add(time.Second - time.Microsecond): "2026-03-01T12:00:06Z",
	} {
		if got := Format(in); got != want {
			t.Errorf("Format(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestTracker(t *testing.T) {
	var tr Tracker
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	steps := []struct {
		idle map[string]bool
		want time.Time
	}{
		{map[string]bool{"a": true, "b": false}, time.Time{}},
		{map[string]bool{"a": true, "b": true}, at(1)}, // b was the last to become idle
		{map[string]bool{"a": true, "b": true}, at(1)},
		{map[string]bool{"a": false, "b": true}, time.Time{}}, // a busy again
		{map[string]bool{"a": true, "b": true}, at(4)},
		{map[string]bool{"a": true}, time.Time{}}, // b unread: not idle
		{map[string]bool{"a": true, "b": true}, at(6)},
		{map[string]bool{}, time.Time{}}, // no GPUs: never idle
	}
	for i, s := range steps {
		if got := tr.Observe(at(i), s.idle); !got.Equal(s.want) {
			t.Errorf("step %d %v: idle since %v, want %v", i, s.idle, got, s.want)
		}
	}
}

func TestPublisherWritesOnTransitionsOnly(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(node(nil))
	p := &Publisher{Client: cs, Node: "n1", FieldManager: "test"}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	get := func() string {
		n, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, ok := n.Annotations[Annotation]
		if !ok {
			return "<absent>"
		}
		return v
	}
	steps := []struct {
		since     time.Time
		wantWrite bool
		want      string
	}{
		{time.Time{}, true, ""}, // busy, published for the first time
		{time.Time{}, false, ""},
		{t0, true, "2026-03-01T12:00:00Z"},
		{t0, false, "2026-03-01T12:00:00Z"},
		{t0.Add(time.Minute), false, "2026-03-01T12:00:00Z"}, // still idle: the earlier time stays
		{time.Time{}, true, ""},
		{t0.Add(2 * time.Minute), true, "2026-03-01T12:02:00Z"},
	}
	for i, s := range steps {
		wrote, err := p.Publish(ctx, s.since)
		if err != nil {
			t.Fatal(err)
		}
		if wrote != s.wantWrite || get() != s.want {
			t.Errorf("step %d: wrote %v, node says %q; want %v, %q", i, wrote, get(), s.wantWrite, s.want)
		}
	}
	if p.Writes() != 4 {
		t.Errorf("%d writes, want 4", p.Writes())
	}

	// A new publisher (a restarted plugin) continues from what the node says.
	p2 := &Publisher{Client: cs, Node: "n1", FieldManager: "test"}
	if wrote, err := p2.Publish(ctx, t0.Add(time.Hour)); err != nil || wrote {
		t.Errorf("restarted publisher on an idle node: wrote %v, %v", wrote, err)
	}
	if got := get(); got != "2026-03-01T12:02:00Z" {
		t.Errorf("restart reset idle-since to %q", got)
	}
	// A value that is not a time is replaced.
	if _, err := cs.CoreV1().Nodes().Patch(ctx, "n1", "application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"`+Annotation+`":"soon"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	p2.Forget()
	if wrote, err := p2.Publish(ctx, time.Time{}); err != nil || !wrote || get() != "" {
		t.Errorf("garbage not replaced: wrote %v, %v, node says %q", wrote, err, get())
	}
}

func TestAllIdleSince(t *testing.T) {
	a := node(map[string]string{Annotation: "2026-03-01T12:00:00Z"})
	b := node(map[string]string{Annotation: "2026-03-01T12:05:00Z"})
	busy := node(map[string]string{Annotation: ""})
	silent := node(nil)
	later := time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC)
	tests := []struct {
		name   string
		nodes  []*corev1.Node
		since  time.Time
		wantOK bool
	}{
		{"all idle: the latest", []*corev1.Node{a, b}, later, true},
		{"one busy", []*corev1.Node{a, busy}, time.Time{}, true},
		{"one silent", []*corev1.Node{a, silent}, time.Time{}, false},
		{"none", nil, time.Time{}, false},
	}
	for _, tt := range tests {
		since, ok := AllIdleSince(tt.nodes)
		if !since.Equal(tt.since) || ok != tt.wantOK {
			t.Errorf("%s: %v, %v; want %v, %v", tt.name, since, ok, tt.since, tt.wantOK)
		}
	}
}

func TestPublisherUtilization(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(node(nil))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := &Publisher{Client: cs, Node: "n1", Now: func() time.Time { return now }}
	read := func() (string, int, bool) {
		n, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u, ok := ReadUtilization(n)
		return n.Annotations[Annotation], u, ok
	}
	steps := []struct {
		advance   time.Duration
		idle      bool
		util      int
		wantWrite bool
		wantUtil  int
	}{
		{0, false, 80, true, 80},                // first: busy, with the utilisation
		{time.Minute, false, 40, false, 80},     // moved, but too soon
		{5 * time.Minute, false, 75, false, 80}, // due, but moved under 10 points
		{0, false, 60, true, 60},                // due and moved: a write of its own
		{time.Second, true, 0, true, 0},         // busy → idle carries it at once
		{time.Second, true, 3, false, 0},
		{time.Second, false, NoUtilization, true, 0}, // unreadable: busy, utilisation kept
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		since := time.Time{}
		if s.idle {
			since = now
		}
		wrote, err := p.PublishUsage(ctx, since, s.util)
		if err != nil {
			t.Fatal(err)
		}
		idle, util, ok := read()
		if wrote != s.wantWrite || !ok || util != s.wantUtil || (idle != "") != s.idle {
			t.Errorf("step %d: wrote %v, node idle %q, utilisation %d (%v); want write %v, utilisation %d",
				i, wrote, idle, util, ok, s.wantWrite, s.wantUtil)
		}
	}
	if _, ok := ReadUtilization(node(map[string]string{UtilizationAnnotation: "x"})); ok {
		t.Error("garbage utilisation read")
	}
}

func TestIdleChanged(t *testing.T) {
	idle := node(map[string]string{Annotation: "2026-03-01T12:00:00Z", UtilizationAnnotation: "0"})
	busy := node(map[string]string{Annotation: "", UtilizationAnnotation: "0"})
	busyHot := node(map[string]string{Annotation: "", UtilizationAnnotation: "90"})
	for _, tt := range []struct {
		name     string
		old, new *corev1.Node
		want     bool
	}{
		{"idle to busy", idle, busy, true},
		{"utilisation only", busy, busyHot, false},
		{"starts publishing", node(nil), busy, true},
		{"unchanged", idle, idle, false},
	} {
		if got := IdleChanged(tt.old, tt.new); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
