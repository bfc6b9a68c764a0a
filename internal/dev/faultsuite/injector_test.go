package faultsuite

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Process faults.
const (
	killLeader    = "kill-leader"
	killAPIServer = "kill-apiserver"
	killEtcd      = "kill-etcd"
)

var processFaults = []string{killLeader, killAPIServer, killEtcd}

// processFault is one planned kill: what, when (after the fault phase
// began) and how long the killed part stays down before its restart.
type processFault struct {
	kind string
	at   time.Duration
	down time.Duration
}

// planProcessFaults draws the kills of a fault phase of length d from
// seed: rounds of the three kinds in a shuffled order, one kill every
// spacing (jittered by up to a quarter of it), none in the last spacing so
// that the last restart is over before the faults stop.
func planProcessFaults(seed int64, d, spacing time.Duration) []processFault {
	rng := newRand(seed, 2)
	var plan []processFault
	var round []string
	for at := spacing / 2; at+spacing <= d; at += spacing {
		if len(round) == 0 {
			round = append([]string(nil), processFaults...)
			rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		jitter := time.Duration(rng.Int64N(int64(spacing/2))) - spacing/4
		down := 500*time.Millisecond + time.Duration(rng.Int64N(int64(2*time.Second)))
		plan = append(plan, processFault{kind: round[0], at: at + jitter, down: down})
		round = round[1:]
	}
	return plan
}

// injector carries out a plan of process faults and records what it did.
type injector struct {
	s *system
	// begin is when the load began: the report's times are since then.
	begin time.Time

	mu   sync.Mutex
	done map[string]int
	errs []error
}

// run carries out plan, its times counted from faultsBegin, until ctx
// ends or the plan is done.
func (in *injector) run(ctx context.Context, t *testing.T, faultsBegin time.Time, plan []processFault) {
	for _, f := range plan {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(faultsBegin.Add(f.at))):
		}
		killed := time.Now()
		err := in.inject(ctx, f)
		in.mu.Lock()
		if err != nil {
			in.errs = append(in.errs, fmt.Errorf("%s at %s: %w", f.kind, f.at.Round(time.Millisecond), err))
		} else {
			in.done[f.kind]++
		}
		in.mu.Unlock()
		t.Logf("process fault %s at +%s (%s), down %s, back after %s: %v", f.kind, killed.Sub(in.begin).Round(time.Millisecond),
			killed.UTC().Format("15:04:05.000"), f.down.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), err)
	}
}

// inject kills one part and brings it back: the leader is restarted by its
// supervisor; kube-apiserver and etcd are restarted after f.down, and the
// time until the apiserver is ready again is an apiserver outage.
func (in *injector) inject(ctx context.Context, f processFault) error {
	s := in.s
	switch f.kind {
	case killLeader:
		// A leader killed a moment ago may not have a successor yet.
		deadline := time.Now().Add(20 * time.Second)
		l := s.leader()
		for ; l == nil; l = s.leader() {
			if time.Now().After(deadline) {
				return fmt.Errorf("no leader to kill for 20s")
			}
			sleep(ctx, 100*time.Millisecond)
		}
		l.kill() // the leaderless time is what watchLeader sees
		return nil
	case killAPIServer:
		return in.outage(ctx, f.down, s.cp.KillAPIServer, s.cp.StartAPIServer)
	case killEtcd:
		return in.outage(ctx, f.down, s.cp.KillEtcd, func(ctx context.Context) error {
			if err := s.cp.StartEtcd(ctx); err != nil {
				return err
			}
			return s.apiserverReady(ctx)
		})
	}
	return fmt.Errorf("unknown process fault %q", f.kind)
}

// outage kills a part, waits down, and restarts it (restart returns once
// the apiserver is ready again): all that time is an apiserver outage.
func (in *injector) outage(ctx context.Context, down time.Duration, kill func() error, restart func(context.Context) error) error {
	in.s.outages.begin(outageAPIServer, time.Now())
	defer func() { in.s.outages.end(outageAPIServer, time.Now()) }()
	if err := kill(); err != nil {
		return err
	}
	sleep(ctx, down)
	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return restart(rctx)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
