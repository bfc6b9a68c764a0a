package faultsuite

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Outage kinds: what a deadline does not count.
const (
	outageLeaderless = "leaderless"
	outageAPIServer  = "apiserver-down"
)

// interval is [from, to); a zero to is still going on.
type interval struct {
	kind     string
	from, to time.Time
}

// outages records the time with no leader or no apiserver.
type outages struct {
	mu   sync.Mutex
	list []interval
	open map[string]int // kind -> index of its open interval
}

func newOutages() *outages { return &outages{open: map[string]int{}} }

// begin opens an outage of kind at t, unless one is open.
func (o *outages) begin(kind string, t time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.open[kind]; ok {
		return
	}
	o.open[kind] = len(o.list)
	o.list = append(o.list, interval{kind: kind, from: t})
}

// end closes the open outage of kind at t, if any.
func (o *outages) end(kind string, t time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if i, ok := o.open[kind]; ok {
		o.list[i].to = t
		delete(o.open, kind)
	}
}

// within is how much of [from, to) had an outage of any kind (their
// union, so overlapping outages count once).
func (o *outages) within(from, to time.Time) time.Duration {
	if !to.After(from) {
		return 0
	}
	o.mu.Lock()
	var clipped []interval
	for _, iv := range o.list {
		end := iv.to
		if end.IsZero() {
			end = to
		}
		a, b := maxTime(iv.from, from), minTime(end, to)
		if b.After(a) {
			clipped = append(clipped, interval{from: a, to: b})
		}
	}
	o.mu.Unlock()
	slices.SortFunc(clipped, func(x, y interval) int { return x.from.Compare(y.from) })
	var total time.Duration
	var cur interval
	for i, iv := range clipped {
		switch {
		case i == 0:
			cur = iv
		case !iv.from.After(cur.to):
			cur.to = maxTime(cur.to, iv.to)
		default:
			total += cur.to.Sub(cur.from)
			cur = iv
		}
	}
	if len(clipped) > 0 {
		total += cur.to.Sub(cur.from)
	}
	return total
}

// intervals are the outages so far, in the order they began.
func (o *outages) intervals() []interval {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.list)
}

// totals is the time of each kind of outage up to now.
func (o *outages) totals(now time.Time) map[string]time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]time.Duration{}
	for _, iv := range o.list {
		end := iv.to
		if end.IsZero() {
			end = now
		}
		out[iv.kind] += end.Sub(iv.from)
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// watchLeader polls the replicas' /metrics every 100 ms until ctx ends and
// records the time no replica leads as leaderless. It returns at once;
// leader reports the replica leading at the last poll (nil: none).
func watchLeader(ctx context.Context, replicas []*replica, o *outages) (leader func() *replica) {
	var mu sync.Mutex
	var cur *replica
	c := &http.Client{Timeout: 500 * time.Millisecond}
	poll := func(ctx context.Context) {
		var found *replica
		for _, r := range replicas {
			if r.isLeader(ctx, c) {
				found = r
				break
			}
		}
		now := time.Now()
		if found == nil {
			o.begin(outageLeaderless, now)
		} else {
			o.end(outageLeaderless, now)
		}
		mu.Lock()
		cur = found
		mu.Unlock()
	}
	poll(ctx)
	go wait.UntilWithContext(ctx, poll, 100*time.Millisecond)
	return func() *replica {
		mu.Lock()
		defer mu.Unlock()
		return cur
	}
}
