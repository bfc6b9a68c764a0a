package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// Operation returns the registered operation with this OperationID, or nil.
func (s *Server) Operation(id string) *huma.Operation {
	for _, op := range Operations(s.api) {
		if op.OperationID == id {
			return op
		}
	}
	return nil
}

// Call invokes operation id through the full handler chain, as an HTTP
// client would, and returns the HTTP status and the envelope it answered.
// params fill the operation's path parameters ({name}) and, for the rest,
// its query string; body, if not nil, is sent as JSON. token is the bearer
// token ("" for none). This is how the MCP layer runs a tool: validation,
// auth, roles, the handler and the envelope are exactly REST's.
func (s *Server) Call(ctx context.Context, id, token string, params map[string]string, body any) (int, json.RawMessage, error) {
	op := s.Operation(id)
	if op == nil {
		return 0, nil, fmt.Errorf("apiserver: no operation %q", id)
	}
	path := op.Path
	query := url.Values{}
	for k, v := range params {
		if ph := "{" + k + "}"; strings.Contains(path, ph) {
			path = strings.ReplaceAll(path, ph, url.PathEscape(v))
			continue
		}
		query.Set(k, v)
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("apiserver: encode body of %s: %w", id, err)
		}
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequestWithContext(ctx, op.Method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res := s.Do(req)
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("apiserver: read answer of %s: %w", id, err)
	}
	return res.StatusCode, out, nil
}
