package benchkit

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    int
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := Percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%d = %s, want %s", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of none = %s, want 0", got)
	}
}

func TestParallel(t *testing.T) {
	var n atomic.Int64
	if err := Parallel(1000, func(int) error { n.Add(1); return nil }); err != nil || n.Load() != 1000 {
		t.Errorf("ran %d, err %v; want 1000, nil", n.Load(), err)
	}
	boom := errors.New("boom")
	if err := Parallel(10, func(i int) error {
		if i == 7 {
			return boom
		}
		return nil
	}); !errors.Is(err, boom) {
		t.Errorf("err %v, want boom", err)
	}
}

func TestSustained(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var ts []time.Time
	for i := range 100 {
		ts = append(ts, t0.Add(time.Duration(i)*10*time.Millisecond)) // 100/s
	}
	ts = append(ts, t0.Add(time.Hour)) // a straggler does not count
	if got := Sustained(ts); got < 99 || got > 101 {
		t.Errorf("sustained %.1f/s, want 100/s", got)
	}
}
