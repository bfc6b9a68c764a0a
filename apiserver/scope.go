package apiserver

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/gpuspace/gpuspace/apiserver/auth"
)

// Scope is the workspace an operation acts on, as its declaration says.
// A key may be limited to one workspace (Editor, a scoped Viewer): the
// handler chain checks each call against the key's workspace before the
// handler runs, from the declaration, as the auth middleware checks roles.
// Handlers check nothing of the kind themselves.
type Scope struct {
	kind scopeKind
	// write: the caller must be able to write the workspace's GPRs
	// (auth.Principal.CanWriteGPRs); otherwise to read it (CanRead).
	write bool
	// from is where the workspace's name — or, for scopeGPR, the GPR's
	// id — is in the request; the first non-empty one counts.
	from []param
}

type scopeKind uint8

const (
	scopeUndeclared scopeKind = iota
	// scopeGlobal: about no one workspace (the inventory): roles decide.
	scopeGlobal
	// scopeFiltered: a list the handler filters to what the caller may
	// read (auth.Principal.CanRead).
	scopeFiltered
	// scopeWorkspace: the workspace named in the request.
	scopeWorkspace
	// scopeGPR: the workspace of the GPR whose id the request names, looked
	// up (gprWorkspace) when the caller is limited to a workspace.
	scopeGPR
)

// param is where a value is in a request: a query or path parameter, or a
// field of the JSON body, by its wire name.
type param struct{ in, name string }

func inQuery(name string) param { return param{"query", name} }
func inPath(name string) param  { return param{"path", name} }
func inBody(name string) param  { return param{"body", name} }

// Declared scopes.
var (
	// scopeNone: the operation is about no one workspace; roles decide.
	scopeNone = Scope{kind: scopeGlobal}
	// scopeEach: a list the handler filters to what the caller may read.
	scopeEach = Scope{kind: scopeFiltered}
)

// readsWorkspace: the caller must be able to read the workspace named at
// from (the first of them set).
func readsWorkspace(from ...param) Scope { return Scope{kind: scopeWorkspace, from: from} }

// writesWorkspace: the caller must be able to write the named workspace's
// GPRs (and get its kubeconfig).
func writesWorkspace(from ...param) Scope {
	return Scope{kind: scopeWorkspace, write: true, from: from}
}

// readsGPR: the caller must be able to read the workspace of the GPR whose
// id is at id.
func readsGPR(id param) Scope { return Scope{kind: scopeGPR, from: []param{id}} }

// writesGPR: the caller must be able to write the GPRs of the workspace of
// the GPR whose id is at id.
func writesGPR(id param) Scope { return Scope{kind: scopeGPR, write: true, from: []param{id}} }

// String describes the scope ("writes the workspace in body sliceName").
func (sc Scope) String() string {
	verb := "reads"
	if sc.write {
		verb = "writes"
	}
	var at []string
	for _, p := range sc.from {
		at = append(at, p.in+" "+p.name)
	}
	switch sc.kind {
	case scopeGlobal:
		return "no workspace"
	case scopeFiltered:
		return "each workspace the caller may read"
	case scopeWorkspace:
		return verb + " the workspace in " + strings.Join(at, ", or ")
	case scopeGPR:
		return verb + " the workspace of the GPR in " + strings.Join(at, ", or ")
	}
	return "undeclared"
}

// scopeLimitedRoles are the roles a key may hold for one workspace: an
// operation open to one of them must declare its scope.
var scopeLimitedRoles = []auth.Role{auth.RoleEditor, auth.RoleViewer}

// needsScope reports whether an operation with roles must declare a scope.
func needsScope(roles []auth.Role) bool {
	return slices.ContainsFunc(roles, func(r auth.Role) bool { return slices.Contains(scopeLimitedRoles, r) })
}

// scopeCheck returns the check of o's scope for inputs of type in (a
// pointer to which the handler gets). It fails when the declaration names
// a parameter or body field the input does not have, so a wrong
// declaration stops the server at start, not a call.
func (s *Server) scopeCheck(o *Op, in reflect.Type) (func(context.Context, any) error, error) {
	sc := o.scope
	if sc.kind != scopeWorkspace && sc.kind != scopeGPR {
		return func(context.Context, any) error { return nil }, nil
	}
	if len(sc.from) == 0 {
		return nil, errors.New("scope names no parameter")
	}
	getters := make([]func(reflect.Value) string, 0, len(sc.from))
	for _, p := range sc.from {
		g, err := stringGetter(in, p)
		if err != nil {
			return nil, err
		}
		getters = append(getters, g)
	}
	what := lowerFirst(o.summary)
	return func(ctx context.Context, input any) error {
		v := reflect.ValueOf(input).Elem()
		name := ""
		for _, g := range getters {
			if name = g(v); name != "" {
				break
			}
		}
		if name == "" {
			// Nothing named: huma refuses that where the name is
			// required, and where it is not the handler answers it (a
			// list of what the caller may read, a 400).
			return nil
		}
		p := principal(ctx)
		ws := name
		if sc.kind == scopeGPR {
			if everywhere(p, sc.write) {
				return nil // no need to look the GPR up
			}
			var err error
			if ws, err = s.gprWorkspace(ctx, name); err != nil {
				return err
			}
		}
		if allowedIn(p, sc.write, ws) {
			return nil
		}
		return forbiddenWorkspace(p, ws, what)
	}, nil
}

// everywhere reports whether p may read (or write the GPRs of) every
// workspace.
func everywhere(p *auth.Principal, write bool) bool {
	if write {
		return p.Role == auth.RoleOwner
	}
	return p.Workspace == "" && p.Role != ""
}

func allowedIn(p *auth.Principal, write bool, ws string) bool {
	if write {
		return p.CanWriteGPRs(ws)
	}
	return p.CanRead(ws)
}

// gprWorkspace is the workspace of GPR id: the one lookup the scope checks
// of GPR operations make. A GPR's workspace never changes, so any version
// of it answers; 404 if there is none.
func (s *Server) gprWorkspace(ctx context.Context, id string) (string, error) {
	g, err := s.gpr(ctx, id)
	if err != nil {
		return "", err
	}
	return g.Spec.Workspace, nil
}

// stringGetter finds p in input type in (a struct of huma parameters and a
// Body) and returns a function reading it ("" when a pointer on the way is
// nil).
func stringGetter(in reflect.Type, p param) (func(reflect.Value) string, error) {
	var index []int
	switch p.in {
	case "query", "path":
		f, ok := fieldByTag(in, p.in, p.name)
		if !ok {
			return nil, fmt.Errorf("scope names %s parameter %q, which the input %s does not have", p.in, p.name, in)
		}
		index = f.Index
	case "body":
		body, ok := in.FieldByName("Body")
		if !ok {
			return nil, fmt.Errorf("scope names body field %q, and the input %s has no body", p.name, in)
		}
		bt := body.Type
		if bt.Kind() == reflect.Pointer {
			bt = bt.Elem()
		}
		if bt.Kind() != reflect.Struct {
			return nil, fmt.Errorf("scope names body field %q, and the body %s is not an object", p.name, bt)
		}
		f, ok := fieldByTag(bt, "json", p.name)
		if !ok {
			return nil, fmt.Errorf("scope names body field %q, which the body %s does not have", p.name, bt)
		}
		index = append(slices.Clone(body.Index), f.Index...)
	default:
		return nil, fmt.Errorf("scope parameter in %q", p.in)
	}
	if t := in.FieldByIndex(index).Type; t.Kind() != reflect.String {
		return nil, fmt.Errorf("scope names %s %q, of type %s: want a string", p.in, p.name, t)
	}
	return func(v reflect.Value) string {
		f, err := v.FieldByIndexErr(index)
		if err != nil {
			return "" // a nil body
		}
		return f.String()
	}, nil
}

// fieldByTag finds the field of struct t (embedded fields included) whose
// tag key names name.
func fieldByTag(t reflect.Type, key, name string) (reflect.StructField, bool) {
	for _, f := range reflect.VisibleFields(t) {
		if tag, _, _ := strings.Cut(f.Tag.Get(key), ","); tag == name && !f.Anonymous {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
