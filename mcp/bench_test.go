package mcp

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// BenchmarkToolCallVsREST measures what MCP costs on top of the REST call
// it makes: each iteration does the same read (GET
// /api/v1/slice-workspace/list, workspaces_list) once over REST and once
// as a tool call, in the same process against the same API, and reports
// both times and their ratio (mcp/rest). Run:
//
//	go test ./mcp -run '^$' -bench ToolCallVsREST -benchtime 2000x
//
// in-process: api.Do (the handler chain, no network) against mcp-go's
// in-process client; http: a keep-alive HTTP client against mcp-go's
// streamable HTTP client, both on loopback to the same listener.
func BenchmarkToolCallVsREST(b *testing.B) {
	h := newHarness(b)
	tok := h.token(b, h.owner)
	const path = "/api/v1/slice-workspace/list"
	restDo := func(b *testing.B, do func(*http.Request) (*http.Response, error), base string) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("REST: %d", resp.StatusCode)
		}
	}
	toolCall := func(b *testing.B, c *client.Client, ctx context.Context) {
		req := mcpgo.CallToolRequest{}
		req.Params.Name = "workspaces_list"
		res, err := c.CallTool(ctx, req)
		if err != nil || res.IsError {
			b.Fatalf("tool call: %v %v", err, res)
		}
	}

	inproc, err := client.NewInProcessClient(h.mcp.MCPServer())
	if err != nil {
		b.Fatal(err)
	}
	overHTTP, err := client.NewStreamableHttpClient(h.http.URL+"/mcp", transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + tok}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := ContextWithToken(context.Background(), tok)
	for _, c := range []*client.Client{inproc, overHTTP} {
		_ = startMCPGo(b, c, ctx, "")
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(hc.CloseIdleConnections)

	cases := []struct {
		name string
		rest func(b *testing.B)
		mcp  func(b *testing.B)
	}{
		{"in-process",
			func(b *testing.B) {
				restDo(b, func(r *http.Request) (*http.Response, error) { return h.api.Do(r), nil }, "http://in-process")
			},
			func(b *testing.B) { toolCall(b, inproc, ctx) }},
		{"http",
			func(b *testing.B) { restDo(b, hc.Do, h.http.URL) },
			func(b *testing.B) { toolCall(b, overHTTP, ctx) }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			// Warm both paths (connections, caches) before measuring.
			for range 20 {
				tc.rest(b)
				tc.mcp(b)
			}
			var restT, mcpT time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				tc.rest(b)
				t1 := time.Now()
				tc.mcp(b)
				t2 := time.Now()
				restT += t1.Sub(t0)
				mcpT += t2.Sub(t1)
			}
			b.ReportMetric(float64(restT.Nanoseconds())/float64(b.N), "rest-ns/call")
			b.ReportMetric(float64(mcpT.Nanoseconds())/float64(b.N), "mcp-ns/call")
			b.ReportMetric(float64(mcpT)/float64(restT), "mcp/rest")
		})
	}
}
