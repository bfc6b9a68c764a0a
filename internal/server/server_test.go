package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/apiserver/client"
	"github.com/gpuspace/gpuspace/internal/dev/testenv"
	"github.com/gpuspace/gpuspace/internal/server"
	"github.com/gpuspace/gpuspace/internal/server/servertest"
)

var env *testenv.Env

func TestMain(m *testing.M) { apiservertest.Main(m, &env) }

// watches is how many WATCH requests the kube-apiserver holds open for
// resource, from its apiserver_longrunning_requests gauge.
func watches(t *testing.T, resource string) int {
	t.Helper()
	raw, err := env.Kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("kube-apiserver /metrics: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_longrunning_requests{") ||
			!strings.Contains(line, `resource="`+resource+`"`) || !strings.Contains(line, `verb="WATCH"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		n += int(v)
	}
	return n
}

// ownerToken creates an Owner key in the server's namespace ns and logs in
// with it at url, once the server knows the key.
func ownerToken(t *testing.T, url, ns string) string {
	t.Helper()
	ctx := context.Background()
	key, _, err := auth.CreateKey(ctx, env.Client, ns, auth.KeyRequest{Name: "owner", Role: auth.RoleOwner}, time.Now())
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	var tok string
	servertest.WaitFor(t, "the key to authenticate", 45*time.Second, func() bool {
		tok, err = servertest.Login(ctx, url, key)
		return err == nil
	})
	return tok
}

// TestFollowerServesFromSharedCache runs a replica that is not the leader
// (another holder has the Lease): the API is ready and answers from the
// manager's cache, which runs without leadership, while the controllers
// wait. Once the Lease is free the replica leads, the controllers work,
// and the process still holds one watch per kind: the API reads the
// controllers' cache instead of opening watches of its own.
func TestFollowerServesFromSharedCache(t *testing.T) {
	ctx := context.Background()
	// Fresh names per run: testenv runs no namespace controller, so a
	// deleted namespace stays Terminating.
	sfx := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	ns, wsNS, ws := "gpuspace-server-test-"+sfx, "follower-ns-"+sfx, "follower-ws-"+sfx
	const leaseName = "gpuspace-controller"
	if _, err := env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace: %v", err)
	}
	t.Cleanup(func() { _ = env.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) })
	holder, secs, now := "another-replica", int32(3600), metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: leaseName, Namespace: ns},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}}
	if _, err := env.Kube.CoordinationV1().Leases(ns).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatalf("lease: %v", err)
	}

	// Watches the test environment holds itself (the node simulator's).
	kinds := []string{"gpuprovisionrequests", "workspaces", "nodes"}
	before := map[string]int{}
	for _, res := range kinds {
		before[res] = watches(t, res)
	}

	url := servertest.Start(t, env.Config, server.Options{Namespace: ns, LeaderElect: true})
	// The key is created after the cache synced: the follower sees it
	// through the cache's watch.
	tok := ownerToken(t, url, ns)
	c := servertest.Client(t, url, tok)
	if r, err := c.CreateWorkspaceWithResponse(ctx, client.CreateWorkspaceBody{WorkspaceName: ws, Username: "u",
		Clusters: &[]string{"worker-1"}, Namespaces: &[]string{wsNS}}); err != nil || r.JSON200 == nil {
		t.Fatalf("create workspace on the follower: %v %v", err, r)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteWorkspaceWithResponse(ctx, client.WorkspaceNameBody{WorkspaceName: ws})
		_ = env.Kube.CoreV1().Namespaces().Delete(ctx, wsNS, metav1.DeleteOptions{})
	})
	servertest.WaitFor(t, "the workspace in the follower's cache", 45*time.Second, func() bool {
		r, err := c.GetWorkspaceWithResponse(ctx, ws)
		return err == nil && r.JSON200 != nil
	})
	time.Sleep(2 * time.Second) // ample time for a controller, were one running, to act
	if _, err := env.Kube.CoreV1().Namespaces().Get(ctx, wsNS, metav1.GetOptions{}); err == nil {
		t.Errorf("the workspace's namespace exists: a controller ran without the Lease")
	}

	// Free the Lease: the replica leads and its controllers make the
	// workspace ready.
	if err := env.Kube.CoordinationV1().Leases(ns).Delete(ctx, leaseName, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete lease: %v", err)
	}
	servertest.WaitFor(t, "workspace Normal once leading", 45*time.Second, func() bool {
		r, err := c.GetWorkspaceWithResponse(ctx, ws)
		return err == nil && r.JSON200 != nil && r.JSON200.Data.Status.SliceHealthStatus == client.Normal
	})
	for _, res := range kinds {
		if got := watches(t, res) - before[res]; got != 1 {
			t.Errorf("watches on %s: %d, want 1 (controllers and API share one cache)", res, got)
		}
	}
}

// TestShutdownEndsEventStreams: a graceful shutdown with a console's event
// stream open ends the stream and returns in well under a second, instead
// of waiting its whole timeout for a connection that never goes idle.
func TestShutdownEndsEventStreams(t *testing.T) {
	ctx := context.Background()
	ns := "gpuspace-shutdown-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	url, stop := servertest.Launch(t, env.Config, server.Options{Namespace: ns})
	t.Cleanup(func() {
		_ = stop()
		_ = env.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})
	tok := ownerToken(t, url, ns)

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /events: %v", err)
	}
	defer resp.Body.Close()
	ended := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(ended)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() == "event: ready" {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("no ready event")
	}

	start := time.Now()
	if err := stop(); err != nil {
		t.Errorf("server: %v", err)
	}
	took := time.Since(start)
	t.Logf("graceful shutdown with an open event stream: %v", took)
	if took >= time.Second {
		t.Errorf("shutdown took %v with a stream open, want under 1s", took)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("the stream is still open after shutdown")
	}
}
