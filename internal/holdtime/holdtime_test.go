package holdtime

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/domain"
)

func TestPredictors(t *testing.T) {
	h := NewHistory(3)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(ws string, req, held time.Duration) {
		at = at.Add(time.Minute)
		h.Add(ws, Sample{Requested: req, Held: held, Finished: at})
	}
	add("one", 4*time.Hour, time.Hour)
	add("two", 4*time.Hour, time.Hour)
	add("two", 2*time.Hour, 2*time.Hour)
	for _, ws := range []string{"many", "many", "many", "many"} { // keeps the newest 3
		add(ws, 10*time.Hour, 5*time.Hour)
	}
	add("many", 10*time.Hour, 10*time.Hour)
	for _, tc := range []struct {
		name     string
		p        Predictor
		ws       string
		req      time.Duration
		want     time.Duration
		wantKept int
	}{
		{"last two: no history is the request", LastTwo{h}, "none", 3 * time.Hour, 3 * time.Hour, 0},
		{"last two: one sample", LastTwo{h}, "one", 8 * time.Hour, time.Hour, 1},
		{"last two: the mean of two", LastTwo{h}, "two", 8 * time.Hour, 90 * time.Minute, 2},
		{"last two: capped at the request", LastTwo{h}, "two", time.Hour, time.Hour, 2},
		{"last two: the newest two", LastTwo{h}, "many", 20 * time.Hour, 450 * time.Minute, 3},
		{"ratio: no history is the request", Ratio{h}, "none", 3 * time.Hour, 3 * time.Hour, 0},
		{"ratio: share of the request", Ratio{h}, "one", 8 * time.Hour, 2 * time.Hour, 1},
		{"ratio: mean share", Ratio{h}, "two", 8 * time.Hour, 5 * time.Hour, 2},
		{"ratio: the newest three", Ratio{h}, "many", 6 * time.Hour, 4 * time.Hour, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Predict(tc.ws, tc.req); got != tc.want {
				t.Errorf("Predict(%s, %s) = %s, want %s", tc.ws, tc.req, got, tc.want)
			}
			if n := len(h.Of(tc.ws)); n != tc.wantKept {
				t.Errorf("history of %s keeps %d samples, want %d", tc.ws, n, tc.wantKept)
			}
		})
	}
}

func TestRemaining(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		predicted time.Duration
		now       time.Duration // after start
		want      time.Duration // after start
	}{
		{"ahead of its prediction", time.Hour, 10 * time.Minute, time.Hour},
		{"past its prediction: halfway to the requested end", time.Hour, 2 * time.Hour, 3 * time.Hour},
		{"past its requested end: now", time.Hour, 5 * time.Hour, 5 * time.Hour},
		{"prediction above the request: the request", 9 * time.Hour, time.Hour, 4 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Remaining(start, 4*time.Hour, tc.predicted, start.Add(tc.now))
			if want := start.Add(tc.want); !got.Equal(want) {
				t.Errorf("Remaining = %s, want %s", got.Sub(start), tc.want)
			}
		})
	}
}

// TestHistoryFromGPRsSurvivesRestarts: the history is read back from the
// finished GPRs' status, so a new controller (a restart) predicts as the
// old one did; evictions and lost nodes say nothing about a workspace's
// habits and are left out.
func TestHistoryFromGPRsSurvivesRestarts(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	finished := func(name string, held time.Duration, reason v1alpha1.GPRReason) *v1alpha1.GPUProvisionRequest {
		g := &v1alpha1.GPUProvisionRequest{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.GPUProvisionRequestSpec{Workspace: "w", ExitDuration: "0d4h0m"}}
		domain.Start(g, []string{"n1"}, start)
		domain.Release(g, reason, start.Add(held))
		start = start.Add(5 * time.Hour)
		return g
	}
	gprs := []*v1alpha1.GPUProvisionRequest{
		finished("a", time.Hour, v1alpha1.ReasonEarlyReleased),
		finished("b", 10*time.Minute, v1alpha1.ReasonEvicted),
		finished("c", 3*time.Hour, v1alpha1.ReasonIdle),
		finished("d", 20*time.Minute, v1alpha1.ReasonNodeLost),
	}
	h := FromGPRs(gprs, Keep)
	if got, want := (LastTwo{h}).Predict("w", 4*time.Hour), 2*time.Hour; got != want {
		t.Errorf("prediction from the stored GPRs %s, want %s (the mean of a and c)", got, want)
	}
}
