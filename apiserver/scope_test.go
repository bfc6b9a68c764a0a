package apiserver

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/gpuspace/gpuspace/apiserver/auth"
)

// TestScopeDeclarationMustMatchInput: a scope naming a parameter or body
// field the input lacks is refused when the operation is registered, not
// found out on a call.
func TestScopeDeclarationMustMatchInput(t *testing.T) {
	s := &Server{}
	for _, c := range []struct {
		scope Scope
		in    reflect.Type
		want  string
	}{
		{readsWorkspace(inQuery("slice")), reflect.TypeFor[gprListInput](), `query parameter "slice"`},
		{readsWorkspace(inPath("name")), reflect.TypeFor[gprListInput](), `path parameter "name"`},
		{writesWorkspace(inBody("sliceName")), reflect.TypeFor[gprIDQueryInput](), "has no body"},
		{writesGPR(inBody("id")), reflect.TypeFor[gprIDBodyInput](), `body field "id"`},
		{readsWorkspace(), reflect.TypeFor[gprListInput](), "names no parameter"},
	} {
		_, err := s.scopeCheck(&Op{id: "x", scope: c.scope}, c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v on %s: %v, want an error about %s", c.scope, c.in, err, c.want)
		}
	}
}

// TestScopeCheck: the declared workspace is found in the input, wherever
// it is, and checked against the caller's.
func TestScopeCheck(t *testing.T) {
	s := &Server{}
	op := &Op{id: "x", summary: "Get a kubeconfig", scope: writesWorkspace(inQuery("workspaceName"), inBody("workspaceName"))}
	check, err := s.scopeCheck(op, reflect.TypeFor[kubeconfigGetInput]())
	if err != nil {
		t.Fatal(err)
	}
	editorA := auth.WithPrincipal(context.Background(), &auth.Principal{Role: auth.RoleEditor, Workspace: "a"})
	owner := auth.WithPrincipal(context.Background(), &auth.Principal{Role: auth.RoleOwner})
	viewer := auth.WithPrincipal(context.Background(), &auth.Principal{Role: auth.RoleViewer})
	for _, c := range []struct {
		name string
		ctx  context.Context
		in   kubeconfigGetInput
		ok   bool
	}{
		{"editor, own workspace in the query", editorA, kubeconfigGetInput{WorkspaceName: "a"}, true},
		{"editor, other workspace in the query", editorA, kubeconfigGetInput{WorkspaceName: "b"}, false},
		{"editor, own workspace in the body", editorA, kubeconfigGetInput{Body: &KubeconfigRequest{WorkspaceName: "a"}}, true},
		{"editor, other workspace in the body", editorA, kubeconfigGetInput{Body: &KubeconfigRequest{WorkspaceName: "b"}}, false},
		{"the query wins over the body", editorA, kubeconfigGetInput{WorkspaceName: "b", Body: &KubeconfigRequest{WorkspaceName: "a"}}, false},
		{"none named: the handler answers", editorA, kubeconfigGetInput{}, true},
		{"owner, any workspace", owner, kubeconfigGetInput{WorkspaceName: "b"}, true},
		{"global viewer may not write", viewer, kubeconfigGetInput{WorkspaceName: "b"}, false},
	} {
		err := check(c.ctx, &c.in)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want allowed %v", c.name, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "get a kubeconfig") {
			t.Errorf("%s: %v does not say what was refused", c.name, err)
		}
	}
}
