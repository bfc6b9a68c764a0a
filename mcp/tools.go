package mcp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/gpuspace/gpuspace/apiserver"
)

// tool is one registered API operation as an MCP tool: the definition
// clients list, and what a call needs to become that operation's HTTP
// request.
type tool struct {
	def         mcpgo.Tool
	operationID string
	method      string
	path        string // with {param} placeholders, as registered
	pathParams  []string
	queryParams []string
	// body is set when the operation takes a JSON body; its properties are
	// the tool arguments that are neither path nor query parameters.
	body       bool
	bodyObject bool // false: the body is not an object and travels as argument "body"
	op         *huma.Operation
	readOnly   bool
	destruct   bool
}

// buildTools turns every operation of api that names an MCP tool into one.
// Operations without a tool name (aliases, authentication, health) are not
// tools.
func buildTools(api huma.API) ([]*tool, error) {
	oapi := api.OpenAPI()
	res, err := newResolver(oapi)
	if err != nil {
		return nil, err
	}
	ops := apiserver.Operations(api)
	refs := toolRefs(ops)
	var tools []*tool
	seen := map[string]string{}
	for _, op := range ops {
		o := apiserver.OpOf(op)
		if o == nil || o.MCPName() == "" {
			continue
		}
		name := o.MCPName()
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("operations %s and %s both name MCP tool %q", prev, op.OperationID, name)
		}
		seen[name] = op.OperationID
		t, err := newTool(op, o, res, refs)
		if err != nil {
			return nil, fmt.Errorf("operation %s (tool %s): %w", op.OperationID, name, err)
		}
		tools = append(tools, t)
	}
	sort.Slice(tools, func(i, j int) bool { return tools[i].def.Name < tools[j].def.Name })
	return tools, nil
}

func newTool(op *huma.Operation, o *apiserver.Op, res *resolver, refs map[string]string) (*tool, error) {
	t := &tool{
		operationID: op.OperationID,
		method:      op.Method,
		path:        op.Path,
		op:          op,
		readOnly:    o.ReadOnly(),
		destruct:    o.Destructive(),
	}
	name := o.MCPName()

	in, err := t.inputSchema(op, res)
	if err != nil {
		return nil, err
	}
	out, err := outputSchema(op, res)
	if err != nil {
		return nil, err
	}
	rewrite := func(s string) string { return toolRefText(s, refs) }
	walkDescriptions(in, rewrite)
	walkDescriptions(out, rewrite)
	inRaw, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode input schema: %w", err)
	}
	outRaw, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode output schema: %w", err)
	}
	t.def = mcpgo.Tool{
		Name:           name,
		Title:          op.Summary,
		Description:    describe(op, o, out != nil, refs),
		RawInputSchema: inRaw,
		Annotations: mcpgo.ToolAnnotation{
			Title:           op.Summary,
			ReadOnlyHint:    ptr(t.readOnly),
			DestructiveHint: ptr(t.destruct),
			IdempotentHint:  ptr(o.Idempotent()),
			// Every tool acts on this gpuspace installation and nothing
			// beyond it.
			OpenWorldHint: ptr(false),
		},
	}
	if out != nil {
		t.def.RawOutputSchema = outRaw
	}
	return t, nil
}

func ptr[T any](v T) *T { return &v }

// inputSchema flattens the operation's path and query parameters and the
// properties of its JSON body into one object schema: agents pass
// arguments by name and need not know which part of the HTTP request each
// travels in.
func (t *tool) inputSchema(op *huma.Operation, res *resolver) (map[string]any, error) {
	props := map[string]any{}
	var required []string
	for _, p := range op.Parameters {
		if p == nil {
			continue
		}
		switch p.In {
		case "path":
			t.pathParams = append(t.pathParams, p.Name)
		case "query":
			t.queryParams = append(t.queryParams, p.Name)
		default:
			// Headers and cookies are the transport's business (the
			// bearer token); no operation takes one as input.
			continue
		}
		s, err := res.resolve(p.Schema)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", p.Name, err)
		}
		if s == nil {
			s = map[string]any{"type": "string"}
		}
		if _, ok := s["description"]; !ok && p.Description != "" {
			s["description"] = p.Description
		}
		props[p.Name] = s
		if p.Required || p.In == "path" {
			required = append(required, p.Name)
		}
	}
	additional := any(false)
	if op.RequestBody != nil {
		mt := op.RequestBody.Content["application/json"]
		if mt == nil || mt.Schema == nil {
			return nil, fmt.Errorf("request body has no application/json schema")
		}
		body, err := res.resolve(mt.Schema)
		if err != nil {
			return nil, fmt.Errorf("request body: %w", err)
		}
		t.body = true
		bodyProps, isObject := body["properties"].(map[string]any)
		if typ, _ := body["type"].(string); typ != "object" || !isObject {
			// Not an object: it cannot be flattened, so it is one argument.
			if _, clash := props["body"]; clash {
				return nil, fmt.Errorf("parameter %q clashes with the body argument", "body")
			}
			props["body"] = body
			if op.RequestBody.Required {
				required = append(required, "body")
			}
		} else {
			t.bodyObject = true
			names := make([]string, 0, len(bodyProps))
			for n := range bodyProps {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				if _, clash := props[n]; clash {
					return nil, fmt.Errorf("body property %q has the name of a parameter", n)
				}
				props[n] = bodyProps[n]
			}
			if req, ok := body["required"].([]any); ok {
				for _, r := range req {
					if s, ok := r.(string); ok {
						required = append(required, s)
					}
				}
			}
			// The API ignores unknown body fields (EGS clients send
			// extras); the tool passes them on, and says so.
			if a, ok := body["additionalProperties"]; ok {
				additional = a
			} else {
				additional = true
			}
		}
	}
	s := map[string]any{
		"type":                 "object",
		"properties":           props,
		"additionalProperties": additional,
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return s, nil
}

// outputSchema is the schema of the operation's success answer: the EGS
// envelope around its data, which is what a tool call returns as
// structured content.
func outputSchema(op *huma.Operation, res *resolver) (map[string]any, error) {
	var codes []int
	for code := range op.Responses {
		if c, err := strconv.Atoi(code); err == nil && c >= 200 && c < 300 {
			codes = append(codes, c)
		}
	}
	if len(codes) == 0 {
		return nil, nil
	}
	slices.Sort(codes)
	resp := op.Responses[strconv.Itoa(codes[0])]
	mt := resp.Content["application/json"]
	if mt == nil || mt.Schema == nil {
		return nil, nil
	}
	s, err := res.resolve(mt.Schema)
	if err != nil {
		return nil, fmt.Errorf("response %d: %w", codes[0], err)
	}
	// MCP requires an object output schema; the envelope always is one.
	if typ, _ := s["type"].(string); typ != "object" {
		return nil, nil
	}
	return s, nil
}

// toolRefs maps "METHOD /path" of every operation that is a tool to the
// tool's name, so that descriptions written for REST clients ("follow it
// with GET /api/v1/gpr") can point agents at tools instead.
func toolRefs(ops []*huma.Operation) map[string]string {
	refs := map[string]string{}
	for _, op := range ops {
		if o := apiserver.OpOf(op); o != nil && o.MCPName() != "" {
			refs[op.Method+" "+op.Path] = o.MCPName()
		}
	}
	return refs
}

var endpointRef = regexp.MustCompile(`\b(GET|POST|PUT|DELETE|PATCH) (/api/v1/[A-Za-z0-9_/{}-]*)(\?[A-Za-z0-9_=&]*)?`)

// toolRefText rewrites "GET /api/v1/gpr?gprId=" to "the gprs_get tool"
// where the endpoint is a tool, and leaves other text alone.
func toolRefText(s string, refs map[string]string) string {
	return endpointRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := endpointRef.FindStringSubmatch(m)
		if name, ok := refs[sub[1]+" "+sub[2]]; ok {
			return "the " + name + " tool"
		}
		return m
	})
}

// statusMeaning tells an agent what an error status means for its next
// step. The texts are generic; the error's own message says what exactly.
var statusMeaning = map[int]string{
	http.StatusBadRequest:          "BAD_REQUEST: the arguments could not be read (wrong JSON type); fix them",
	http.StatusUnauthorized:        "UNAUTHENTICATED: the bearer token is missing, expired or revoked; the user must supply a new token or API key, retrying will not help",
	http.StatusForbidden:           "FORBIDDEN: the caller's role or workspace scope does not allow this; do not retry, tell the user which role is needed",
	http.StatusNotFound:            "NOT_FOUND: the workspace, GPR or key named does not exist; list them to find the right name",
	http.StatusConflict:            "CONFLICT or ALREADY_EXISTS: the object exists already, or its state does not allow this (the message says which)",
	http.StatusUnprocessableEntity: "VALIDATION_ERROR: an argument is invalid; the message names each field and why, fix them and call again",
	http.StatusInternalServerError: "INTERNAL_ERROR: a server fault; retry later or report it",
}

// describe writes the tool description: the operation's own summary and
// description, the guidance and units it declares, and what the answer and
// each documented error mean.
func describe(op *huma.Operation, o *apiserver.Op, hasOutput bool, refs map[string]string) string {
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(op.Summary, "."))
	b.WriteString(".")
	if d := strings.TrimSpace(op.Description); d != "" {
		b.WriteString("\n\n")
		b.WriteString(toolRefText(d, refs))
	}
	if g := o.Guidance(); g != "" {
		b.WriteString("\n\n")
		b.WriteString(toolRefText(g, refs))
	}
	var units []string
	for _, u := range o.Units() {
		units = append(units, string(u))
	}
	if len(units) > 0 {
		b.WriteString("\n\nUnits: ")
		b.WriteString(strings.Join(units, "; "))
		b.WriteString(".")
	}
	if hasOutput {
		b.WriteString("\n\nAnswer: the API's envelope {statusCode, status, message, data}; the result is in data.")
	}
	var codes []int
	for code := range op.Responses {
		if c, err := strconv.Atoi(code); err == nil && statusMeaning[c] != "" {
			codes = append(codes, c)
		}
	}
	slices.Sort(codes)
	if len(codes) > 0 {
		b.WriteString("\n\nErrors come back as a tool error whose text starts with the errorKey, the HTTP status and the API's message:")
		for _, c := range codes {
			fmt.Fprintf(&b, "\n- %d %s.", c, statusMeaning[c])
		}
	}
	return b.String()
}
