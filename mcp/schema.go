package mcp

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// componentPrefix is where huma puts the named schemas an operation's
// request and response refer to.
const componentPrefix = "#/components/schemas/"

// resolver turns huma schemas into self-contained JSON Schema documents:
// MCP clients get one tool definition at a time, with no OpenAPI document
// around it, so every $ref is inlined.
type resolver struct {
	components map[string]map[string]any
}

func newResolver(oapi *huma.OpenAPI) (*resolver, error) {
	r := &resolver{components: map[string]map[string]any{}}
	if oapi.Components == nil || oapi.Components.Schemas == nil {
		return r, nil
	}
	for name, s := range oapi.Components.Schemas.Map() {
		m, err := schemaMap(s)
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		r.components[name] = m
	}
	return r, nil
}

// schemaMap is s as generic JSON, the form the rest of this file edits.
func schemaMap(s *huma.Schema) (map[string]any, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode schema: %w", err)
	}
	return m, nil
}

// resolve returns s with every $ref replaced by a copy of what it names.
// A schema that refers to itself, directly or not, cannot be inlined and
// is an error: no operation registered today has one, and a test would see
// one added.
func (r *resolver) resolve(s *huma.Schema) (map[string]any, error) {
	if s == nil {
		return nil, nil
	}
	m, err := schemaMap(s)
	if err != nil {
		return nil, err
	}
	v, err := r.inline(m, nil)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

func (r *resolver) inline(v any, stack []string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		if ref, ok := t["$ref"].(string); ok {
			name, found := strings.CutPrefix(ref, componentPrefix)
			if !found {
				return nil, fmt.Errorf("$ref %q is not a component schema", ref)
			}
			for _, seen := range stack {
				if seen == name {
					return nil, fmt.Errorf("schema %s refers to itself (%s)", name, strings.Join(append(stack, name), " > "))
				}
			}
			target, ok := r.components[name]
			if !ok {
				return nil, fmt.Errorf("$ref %q names no schema", ref)
			}
			resolved, err := r.inline(target, append(stack, name))
			if err != nil {
				return nil, err
			}
			out := resolved.(map[string]any)
			// Keywords beside a $ref (a description, in 3.1) win over the
			// target's own.
			for k, sibling := range t {
				if k == "$ref" {
					continue
				}
				if out, err = withKey(out, k, sibling, stack, r); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
		out := make(map[string]any, len(t))
		for k, e := range t {
			c, err := r.inline(e, stack)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			c, err := r.inline(e, stack)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	}
	return v, nil
}

func withKey(m map[string]any, k string, v any, stack []string, r *resolver) (map[string]any, error) {
	c, err := r.inline(v, stack)
	if err != nil {
		return nil, err
	}
	m[k] = c
	return m, nil
}

// walkDescriptions calls f on every "description" string in a schema, in
// place.
func walkDescriptions(v any, f func(string) string) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if s, ok := e.(string); ok && k == "description" {
				t[k] = f(s)
				continue
			}
			walkDescriptions(e, f)
		}
	case []any:
		for _, e := range t {
			walkDescriptions(e, f)
		}
	}
}
