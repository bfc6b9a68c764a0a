package server

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestHTTPTimeouts: the listener has real timeouts and a header limit, an
// answer slower than the write timeout is cut, and the streaming
// endpoints are exempt (a stream outlives the read and write timeouts,
// with its context intact).
func TestHTTPTimeouts(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler(), defaultTimeouts, zap.NewNop())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("production server without a timeout or header limit: %+v", srv)
	}

	const slow = 400 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case <-time.After(slow):
		case <-r.Context().Done():
			http.Error(w, "context cancelled", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(append([]byte("done "), body...))
	})
	srv = newHTTPServer(h, httpTimeouts{readHeader: time.Second, read: 150 * time.Millisecond, write: 150 * time.Millisecond, idle: time.Second}, zap.NewNop())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String()
	get := func(method, path, body string) (string, error) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			return "", err
		}
		if body == "" {
			req.Body = http.NoBody
		}
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		res, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), err
	}
	if got, err := get(http.MethodGet, "/api/v1/gpr/list", ""); err == nil {
		t.Errorf("an answer slower than the write timeout came through: %q", got)
	}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/events", ""},
		{http.MethodPost, "/mcp", `{"jsonrpc":"2.0"}`},
		{http.MethodGet, "/mcp", ""},
	} {
		got, err := get(c.method, c.path, c.body)
		if err != nil || got != "done "+c.body {
			t.Errorf("%s %s (streaming, exempt): %q, %v; want %q", c.method, c.path, got, err, "done "+c.body)
		}
	}
}

// TestStreamBodyReadStaysBounded: on a streaming endpoint the request body
// must still arrive within the read timeout.
func TestStreamBodyReadStaysBounded(t *testing.T) {
	read := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
	})
	srv := newHTTPServer(h, httpTimeouts{readHeader: time.Second, read: 150 * time.Millisecond, write: time.Second, idle: time.Second}, zap.NewNop())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var req bytes.Buffer
	req.WriteString("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-read:
		if err == nil {
			t.Error("a body that never finished was read to its end")
		}
	case <-time.After(5 * time.Second):
		t.Error("reading a stalled body on /mcp was not cut by the read timeout")
	}
}
