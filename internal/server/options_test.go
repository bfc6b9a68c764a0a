package server

import (
	"strings"
	"testing"
	"time"
)

func TestLeaderElectionOptions(t *testing.T) {
	for _, tt := range []struct {
		name                 string
		lease, renew, retry  time.Duration
		wantErr              string
		wantLease, wantRenew time.Duration
		wantRetry            time.Duration
	}{
		{name: "defaults", wantLease: DefaultLeaseDuration, wantRenew: DefaultRenewDeadline, wantRetry: DefaultRetryPeriod},
		{name: "kube-controller-manager's", lease: 15 * time.Second, renew: 10 * time.Second, retry: 2 * time.Second,
			wantLease: 15 * time.Second, wantRenew: 10 * time.Second, wantRetry: 2 * time.Second},
		{name: "renew not below lease", lease: 6 * time.Second, wantErr: "greater than the renew deadline"},
		{name: "retry too close to renew", renew: 2 * time.Second, retry: 2 * time.Second, wantErr: "× the retry period"},
		{name: "negative", retry: -time.Second, wantErr: "positive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{LeaseDuration: tt.lease, RenewDeadline: tt.renew, RetryPeriod: tt.retry}
			err := o.leaderElection()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.LeaseDuration != tt.wantLease || o.RenewDeadline != tt.wantRenew || o.RetryPeriod != tt.wantRetry {
				t.Errorf("got %s/%s/%s, want %s/%s/%s", o.LeaseDuration, o.RenewDeadline, o.RetryPeriod, tt.wantLease, tt.wantRenew, tt.wantRetry)
			}
		})
	}
	// The defaults bring failover after kill -9 (lease expiry plus one
	// jittered retry) under 15 s.
	if worst := DefaultLeaseDuration + time.Duration(2.2*float64(DefaultRetryPeriod)); worst >= 12*time.Second {
		t.Errorf("worst-case takeover %s leaves too little of 15 s to start the controllers", worst)
	}
}
