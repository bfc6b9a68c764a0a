// Package servertest runs `gpuspace serve`'s control plane (server.Run) in
// a test and drives it with the generated API client. Its counterpart for
// the API alone (and MCP) is apiserver/apiservertest.
package servertest

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"k8s.io/client-go/rest"

	"github.com/gpuspace/gpuspace/apiserver"
	"github.com/gpuspace/gpuspace/apiserver/apiservertest"
	"github.com/gpuspace/gpuspace/apiserver/client"
	"github.com/gpuspace/gpuspace/internal/server"
)

// Start runs server.Run with o against cfg on a loopback port until the
// test ends, logging into the test, and returns the API's base URL once it
// is ready. o's RESTConfig, Listen, Logger, OnReady and
// SkipControllerNameValidation are set here.
func Start(t *testing.T, cfg *rest.Config, o server.Options) string {
	t.Helper()
	url, stop := Launch(t, cfg, o)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return url
}

// Launch is Start for tests that stop the server themselves: stop cancels
// Run's context and returns what Run returned, once it has (it may be
// called again, and is not called at the test's end).
func Launch(t *testing.T, cfg *rest.Config, o server.Options) (url string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	o.RESTConfig, o.Listen, o.Logger = cfg, "127.0.0.1:0", zaptest.NewLogger(t)
	o.SkipControllerNameValidation = true // tests may start several
	o.OnReady = func(a string, _ *apiserver.Server) { addr <- a }
	go func() { done <- server.Run(ctx, o) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	select {
	case a := <-addr:
		return "http://" + a, stop
	case err := <-done:
		cancel()
		t.Fatalf("server stopped before it was ready: %v", err)
	case <-time.After(time.Minute):
		_ = stop()
		t.Fatal("server not ready after a minute")
	}
	return "", stop
}

// Client returns a generated client for url that sends token as its
// bearer (none if token is empty).
func Client(t testing.TB, url, token string) *client.ClientWithResponses {
	t.Helper()
	c, err := client.NewClientWithResponses(url, client.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}))
	if err != nil {
		t.Fatalf("NewClientWithResponses: %v", err)
	}
	return c
}

// Login exchanges an API key for a bearer token at url.
func Login(ctx context.Context, url, key string) (string, error) {
	c, err := client.NewClientWithResponses(url)
	if err != nil {
		return "", err
	}
	r, err := c.AuthenticateWithResponse(ctx, client.AuthRequest{ApiKey: key})
	if err != nil {
		return "", err
	}
	if r.JSON200 == nil {
		return "", &StatusError{Code: r.StatusCode(), Body: string(r.Body)}
	}
	return r.JSON200.Data.Token, nil
}

// StatusError is an answer other than the one expected.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return http.StatusText(e.Code) + ": " + e.Body }

// WaitFor polls cond until it holds, failing the test after timeout
// (apiservertest.WaitFor).
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	apiservertest.WaitFor(t, what, timeout, cond)
}
