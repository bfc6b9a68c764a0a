package faultproxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// upstream is a stand-in apiserver: it answers every write with the
// ConfigMap it was sent, counts the writes that reached it, and streams a
// watch event every 50 ms for 5 s.
type upstream struct {
	*httptest.Server
	writes atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") == "true" {
			u.streamWatch(w, r)
			return
		}
		if isWrite(r.Method) {
			u.writes.Add(1)
			body, _ := io.ReadAll(r.Body)
			_, _ = w.Write(body)
			return
		}
		fmt.Fprint(w, `{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) streamWatch(w http.ResponseWriter, r *http.Request) {
	for i := range 100 {
		fmt.Fprintf(w, `{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c%d","namespace":"ns","resourceVersion":"%d"}}}`+"\n", i, i+2)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func startProxy(t *testing.T, u *upstream, seed int64, rates Rates) (*Proxy, kubernetes.Interface) {
	t.Helper()
	return startProxyWith(t, Config{Upstream: &rest.Config{Host: u.URL}, Seed: seed, Rates: rates})
}

func startProxyWith(t *testing.T, cfg Config) (*Proxy, kubernetes.Interface) {
	t.Helper()
	p, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	rc := p.RESTConfig()
	rc.QPS, rc.Burst = 1000, 1000
	rc.ContentType, rc.AcceptContentTypes = "application/json", "application/json" // the stand-in speaks JSON only
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return p, cs
}

func createConfigMap(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().ConfigMaps("ns").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}, metav1.CreateOptions{})
	return err
}

// TestSeedDecidesFaults: the faults drawn for the same requests are the
// same with the same seed, whatever the order in which different objects'
// requests come, and differ with another seed.
func TestSeedDecidesFaults(t *testing.T) {
	rates := Rates{Error500: 0.1, Throttle429: 0.1, Timeout: 0.1, LostResponse: 0.1, Delay: 0.2}.withDefaults()
	draw := func(seed int64, order []string) map[string][]decision {
		p := &Proxy{seed: uint64(seed), seen: map[string]uint64{}}
		p.rates.Store(&rates)
		out := map[string][]decision{}
		for _, path := range order {
			r := httptest.NewRequest(http.MethodPut, path, nil)
			out[path] = append(out[path], p.decide(r))
		}
		return out
	}
	var order, reversed []string
	for i := range 200 {
		order = append(order, fmt.Sprintf("/api/v1/namespaces/ns/configmaps/c%d", i%7))
	}
	for i := len(order) - 1; i >= 0; i-- {
		reversed = append(reversed, order[i])
	}
	a, b, c := draw(42, order), draw(42, reversed), draw(43, order)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("seed 42 drew different faults when the objects' requests interleaved differently")
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 42 and 43 drew the same faults")
	}
}

// TestWriteFaults: a share of writes fails with 500, 429 (retried by
// client-go after Retry-After), a timeout, or a lost response that did
// reach the apiserver; the counts say how many of each; reads are not
// failed; with faults off, nothing is injected.
func TestWriteFaults(t *testing.T) {
	u := newUpstream(t)
	p, cs := startProxy(t, u, 7, Rates{Error500: 0.15, Timeout: 0.1, LostResponse: 0.1, TimeoutHold: 20 * time.Millisecond})
	ctx := context.Background()
	const n = 400
	var internal, timeouts int
	for i := range n {
		err := createConfigMap(ctx, cs, fmt.Sprintf("c%d", i))
		switch {
		case err == nil:
		case apierrors.IsInternalError(err):
			internal++
		case apierrors.IsTimeout(err):
			timeouts++
		default:
			t.Fatalf("create %d: unexpected error %v", i, err)
		}
	}
	got := p.Counts()
	if recs := p.Records(); int64(len(recs)) != got[Error500]+got[Timeout]+got[LostResponse] || recs[0].Method != http.MethodPost {
		t.Errorf("%d records of faults on writes, want one per fault counted (%v)", len(recs), got)
	}
	if int64(internal) != got[Error500] || int64(timeouts) != got[Timeout]+got[LostResponse] {
		t.Errorf("clients saw %d internal errors and %d timeouts; counts are %v", internal, timeouts, got)
	}
	for k, want := range map[Kind]float64{Error500: 0.15, Timeout: 0.1, LostResponse: 0.1} {
		if share := float64(got[k]) / n; share < want/2 || share > want*1.5 {
			t.Errorf("%s: %d of %d writes (%.2f), want about %.2f", k, got[k], n, share, want)
		}
	}
	if reached, want := u.writes.Load(), int64(n)-got[Error500]-got[Timeout]; reached != want {
		t.Errorf("%d writes reached the apiserver, want %d (all but 500s and timeouts)", reached, want)
	}
	for range 50 {
		if _, err := cs.CoreV1().ConfigMaps("ns").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatalf("a read failed: %v", err)
		}
	}

	p.SetEnabled(false)
	before := p.Counts()
	for i := range 50 {
		if err := createConfigMap(ctx, cs, fmt.Sprintf("off%d", i)); err != nil {
			t.Fatalf("with faults off, create failed: %v", err)
		}
	}
	if after := p.Counts(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("with faults off the counts moved from %v to %v", before, after)
	}
}

// TestOnly: with Only set, faults hit only the requests it accepts.
func TestOnly(t *testing.T) {
	u := newUpstream(t)
	p, cs := startProxyWith(t, Config{Upstream: &rest.Config{Host: u.URL}, Rates: Rates{Error500: 1},
		Only: func(r *http.Request) bool {
			return strings.HasSuffix(r.URL.Path, "/configmaps") && r.Method == http.MethodPost
		}})
	if err := createConfigMap(context.Background(), cs, "c"); !apierrors.IsInternalError(err) {
		t.Errorf("create = %v, want the injected 500", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("ns").Update(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}}, metav1.UpdateOptions{}); err != nil {
		t.Errorf("update, which Only does not accept: %v", err)
	}
	if got := p.Counts()[Error500]; got != 1 {
		t.Errorf("%d faults, want 1", got)
	}
}

// TestThrottleIsRetried: a 429 carries Retry-After, so client-go waits and
// retries it: the write succeeds, late.
func TestThrottleIsRetried(t *testing.T) {
	u := newUpstream(t)
	p, cs := startProxy(t, u, 1, Rates{Throttle429: 0.5})
	for i := 0; p.Counts()[Throttle429] == 0; i++ {
		if i == 10 {
			t.Fatal("no 429 in 10 writes at a share of 0.5")
		}
		if err := createConfigMap(context.Background(), cs, fmt.Sprintf("c%d", i)); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
}

// TestWatchCut: a cut watch stream ends with an error long before the
// apiserver would have ended it.
func TestWatchCut(t *testing.T) {
	u := newUpstream(t)
	p, cs := startProxy(t, u, 3, Rates{WatchCut: 1, MaxWatchLife: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	w, err := cs.CoreV1().ConfigMaps("ns").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	events := 0
	for ev := range w.ResultChan() {
		if ev.Type == "ERROR" {
			break
		}
		events++
	}
	w.Stop()
	if took := time.Since(start); took > 2*time.Second || events == 0 || events >= 100 {
		t.Errorf("watch ended after %s with %d of 100 events; want a cut within 0.5 s after some events", took, events)
	}
	waitFor(t, func() bool { return p.Counts()[WatchCut] == 1 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRatesValidated: shares outside [0, 1], or write shares adding up
// to more than 1, are refused.
func TestRatesValidated(t *testing.T) {
	for _, r := range []Rates{{Error500: -0.1}, {Delay: 1.5}, {Error500: 0.6, Timeout: 0.6}} {
		if _, err := Start(Config{Upstream: &rest.Config{Host: "http://127.0.0.1:1"}, Rates: r}); err == nil || !strings.Contains(err.Error(), "faultproxy") {
			t.Errorf("Start(%+v) = %v, want an error", r, err)
		}
	}
}
