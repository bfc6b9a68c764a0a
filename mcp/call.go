package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// maxAnswerBytes bounds what a tool call reads of an API answer. The
// largest answers (inventory of a big cluster) stay far below it.
const maxAnswerBytes = 32 << 20

// argError is an argument the tool cannot place in an HTTP request at all
// (a missing path parameter, an unknown argument of an operation without a
// body). Everything else is left to the API to judge, so that an agent gets
// the API's own validation errors.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

// request builds the HTTP request of a tool call: path parameters into the
// path, query parameters into the query string, the rest into the JSON
// body. base is the API's URL ("" for in-process calls).
func (t *tool) request(ctx context.Context, base string, args map[string]any) (*http.Request, error) {
	p := t.path
	for _, name := range t.pathParams {
		v, ok := args[name]
		s := ""
		if ok {
			s = scalar(v)
		}
		if s == "" {
			return nil, &argError{fmt.Sprintf("argument %q is required", name)}
		}
		p = strings.Replace(p, "{"+name+"}", url.PathEscape(s), 1)
	}
	q := url.Values{}
	for _, name := range t.queryParams {
		v, ok := args[name]
		if !ok || v == nil {
			continue
		}
		if list, isList := v.([]any); isList {
			for _, e := range list {
				q.Add(name, scalar(e))
			}
			continue
		}
		q.Set(name, scalar(v))
	}
	var body io.Reader
	if t.body {
		var payload any
		if t.bodyObject {
			obj := map[string]any{}
			for k, v := range args {
				if !slices.Contains(t.pathParams, k) && !slices.Contains(t.queryParams, k) {
					obj[k] = v
				}
			}
			payload = obj
		} else {
			payload = args["body"]
		}
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, &argError{fmt.Sprintf("arguments cannot be encoded as JSON: %v", err)}
		}
		body = bytes.NewReader(b)
	} else {
		for k := range args {
			if !slices.Contains(t.pathParams, k) && !slices.Contains(t.queryParams, k) {
				return nil, &argError{fmt.Sprintf("unknown argument %q; %s takes %s", k, t.def.Name, t.argList())}
			}
		}
	}
	u := strings.TrimSuffix(base, "/") + p
	if base == "" {
		u = "http://gpuspace.in-process" + p
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, t.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "gpuspace-mcp")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

func (t *tool) argList() string {
	names := append(slices.Clone(t.pathParams), t.queryParams...)
	if len(names) == 0 {
		return "no arguments"
	}
	return strings.Join(names, ", ")
}

// scalar renders a JSON value as a path or query parameter.
func scalar(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case json.Number:
		return t.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// apiError is the part of an error envelope a tool error shows.
type apiError struct {
	StatusCode int    `json:"statusCode"`
	Message    string `json:"message"`
	Error      *struct {
		ErrorKey string `json:"errorKey"`
		Message  string `json:"message"`
	} `json:"error"`
}

// result turns the API's answer into the tool result: on success the
// envelope as structured content (and as text, for clients that read only
// text); on failure a tool error that starts with the errorKey, the status
// and the message, followed by the whole envelope.
func result(resp *http.Response) *mcpgo.CallToolResult {
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return mcpgo.NewToolResultErrorf("reading the API's answer (HTTP %d) failed: %v", resp.StatusCode, err)
	}
	if len(raw) > maxAnswerBytes {
		return mcpgo.NewToolResultErrorf("the API's answer (HTTP %d) is larger than %d bytes", resp.StatusCode, maxAnswerBytes)
	}
	raw = bytes.TrimSpace(raw)
	isJSONObject := len(raw) > 0 && raw[0] == '{' && json.Valid(raw)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 && isJSONObject {
		return &mcpgo.CallToolResult{
			Content:           []mcpgo.Content{mcpgo.NewTextContent(string(raw))},
			StructuredContent: json.RawMessage(raw),
		}
	}
	if !isJSONObject {
		// Not the API speaking (a proxy in front of it, say).
		return mcpgo.NewToolResultErrorf("HTTP %d %s from the API, not a JSON envelope: %s",
			resp.StatusCode, http.StatusText(resp.StatusCode), truncate(string(raw), 2000))
	}
	var e apiError
	_ = json.Unmarshal(raw, &e) // raw is valid JSON; missing fields stay empty
	key, msg := "", e.Message
	if e.Error != nil {
		key = e.Error.ErrorKey
		if e.Error.Message != "" {
			msg = e.Error.Message
		}
	}
	if key == "" {
		key = "HTTP_ERROR"
	}
	return mcpgo.NewToolResultError(fmt.Sprintf("%s (HTTP %d): %s\n\n%s", key, resp.StatusCode, msg, raw))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
