package apiserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/auth"
)

// BenchmarkListGPRs1k: GET /gpr/list?sliceName= over loopback HTTP for a
// workspace with 1000 GPRs (served from the informer cache through the
// workspace index, rendered, enveloped, JSON-encoded, read by the client).
func BenchmarkListGPRs1k(b *testing.B) {
	ts := newTestServer(b)
	ws := "bench-" + suffix()
	createWorkspace(b, ts, ws, ws)
	b.Cleanup(func() {
		_ = env.Client.DeleteAllOf(context.Background(), &v1alpha1.GPUProvisionRequest{}, client.MatchingLabels{"bench": ws})
		ts.do(http.MethodDelete, "/api/v1/slice-workspace", ts.owner, map[string]string{"workspaceName": ws})
	})
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			g := &v1alpha1.GPUProvisionRequest{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gpr-%08x-bnch", i), Labels: map[string]string{"bench": ws}},
				Spec: v1alpha1.GPUProvisionRequestSpec{GPRName: "bench", Workspace: ws, ClusterName: "worker-1",
					NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: int32(1 + i%300), ExitDuration: "0d1h0m", GPUShape: "H100"},
			}
			if err := env.Client.Create(context.Background(), g); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	path := "/api/v1/gpr/list?sliceName=" + ws
	waitFor(b, "1000 GPRs in the cache", func() bool {
		r := ts.do(http.MethodGet, path, ts.owner, nil)
		items, _ := r.data()["items"].([]any)
		return len(items) == n
	})
	b.ReportAllocs()
	b.ResetTimer()
	var size int64
	for b.Loop() {
		size = rawGet(b, ts.http.URL+path, ts.owner)
	}
	b.ReportMetric(float64(size), "B/response")
}

// BenchmarkAuthExchange: POST /api/v1/auth over loopback HTTP: key lookup
// in the cache, SHA-256 and constant-time compare, token signing.
func BenchmarkAuthExchange(b *testing.B) {
	ts := newTestServer(b)
	body := map[string]string{"apiKey": ts.ownKey}
	b.ReportAllocs()
	for b.Loop() {
		r := doHTTP(b, ts.http.URL, http.MethodPost, "/api/v1/auth", "", body, nil)
		if r.code != http.StatusOK {
			b.Fatalf("%d", r.code)
		}
	}
}

// BenchmarkTokenVerify: what every authenticated request pays: HMAC
// verification, claims, and the key's Secret from the cache. The server
// follows the signing key Secret through an informer (so rotations need no
// restart); the fixed-signer baseline is the same Authenticator with the
// key held in memory, for the ratio.
func BenchmarkTokenVerify(b *testing.B) {
	ts := newTestServer(b)
	ctx := context.Background()
	sec, err := env.Kube.CoreV1().Secrets(ts.ns).Get(ctx, auth.SigningKeySecret, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	fixed, err := auth.NewSigner(sec.Data["key"])
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		auth *auth.Authenticator
	}{
		{"fixed-signer", auth.NewAuthenticator(fixed, ts.srv.cache, ts.srv.client, ts.ns, 0, nil)},
		{"secret-key-source", ts.srv.authenticator()},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.auth.Verify(ctx, ts.owner); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAuthenticatedRequest: a cheap authenticated operation end to end
// over loopback (GET /api/v1/slice-workspace/list with no workspaces of
// its own), against the public healthcheck as the baseline.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	ts := newTestServer(b)
	for _, c := range []struct{ name, path, token string }{
		{"healthcheck-public", "/api/v1/healthcheck", ""},
		{"apikeys-list-authenticated", "/api/v1/api-key/list", ts.owner},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rawGet(b, ts.http.URL+c.path, c.token)
			}
		})
	}
}

// rawGet GETs url and reads the answer without decoding it, so benchmarks
// measure the server, not the test client's JSON parsing.
func rawGet(b *testing.B, url, token string) int64 {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	n, err := io.Copy(io.Discard, res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
	return n
}
