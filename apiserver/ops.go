package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/internal/view"
)

// Role sets operations declare.
var (
	rolesPublic  []auth.Role
	rolesOwner   = []auth.Role{auth.RoleOwner}
	rolesEditors = []auth.Role{auth.RoleOwner, auth.RoleEditor}
	rolesReaders = []auth.Role{auth.RoleOwner, auth.RoleEditor, auth.RoleViewer}
)

// Op is what an operation declares: its route and documentation for huma,
// who may call it (roles, and the workspace it acts on), and what the MCP
// layer makes of it (tool name, hints, guidance, units). Each operation is
// declared once, in its register call; huma.Operation.Metadata carries the
// declaration (OpOf reads it back), so the auth middleware, the scope
// check and the MCP layer all read the same value.
type Op struct {
	id, method, path, summary, description string
	tag                                    string
	roles                                  []auth.Role
	// scope is the workspace the operation acts on; required when roles
	// include a role a key may hold for one workspace (Editor, Viewer).
	scope                             Scope
	readOnly, destructive, idempotent bool
	// mcpName is the MCP tool name; aliasOf names the operation this one
	// is another wire form of (no tool of its own).
	mcpName, aliasOf string
	// guidance is what an agent needs beyond the description: which tool
	// to call before or after, what cannot be undone.
	guidance string
	// units are the units the operation's fields use, explained to agents.
	units  []Unit
	errors []int
}

// opSpec is the name the register calls write an Op literal with.
type opSpec = Op

// Roles returns the roles allowed to call the operation; none means public.
func (o *Op) Roles() []auth.Role { return o.roles }

// Scope returns the workspace scope the operation declares.
func (o *Op) Scope() Scope { return o.scope }

// ReadOnly reports whether the operation changes nothing.
func (o *Op) ReadOnly() bool { return o.readOnly }

// Destructive reports whether the operation deletes or releases something.
func (o *Op) Destructive() bool { return o.destructive }

// Idempotent reports whether repeating the call has no further effect.
func (o *Op) Idempotent() bool { return o.idempotent }

// MCPName returns the MCP tool name (noun_verb), or "" for operations that
// are not tools: aliases of another (same handler, other wire form),
// authentication, health.
func (o *Op) MCPName() string { return o.mcpName }

// Guidance returns what an agent needs beyond the description.
func (o *Op) Guidance() string { return o.guidance }

// Units returns the units the operation's fields use.
func (o *Op) Units() []Unit { return o.units }

// metaOp is the Operation.Metadata key of the declaration.
const metaOp = "gpuspace.op"

// OpOf returns the declaration of an operation registered by this package;
// nil for any other.
func OpOf(op *huma.Operation) *Op {
	if op == nil {
		return nil
	}
	o, _ := op.Metadata[metaOp].(*Op)
	return o
}

// Unit is a unit an operation's fields use, in words for agents.
type Unit string

// Units.
const (
	UnitGPUMemory Unit = "GPU memory is in GB (gigabytes, whole numbers)"
	UnitDurations Unit = "durations are sent as NdNhNm (e.g. 0d2h30m: days, hours, minutes, all three parts) and come back as Go durations (e.g. 2h30m0s)"
	UnitTimes     Unit = "times are RFC 3339 in UTC"
)

var (
	unitsMemory = []Unit{UnitGPUMemory}
	unitsGPR    = []Unit{UnitGPUMemory, UnitDurations, UnitTimes}
)

// register registers one operation with huma, once, with its declaration,
// and puts the declared workspace scope check in front of the handler.
func register[I, O any](s *Server, o Op, h func(context.Context, *I) (*O, error)) {
	check, err := s.scopeCheck(&o, reflect.TypeFor[I]())
	if err != nil {
		panic(fmt.Sprintf("apiserver: operation %s: %v", o.id, err)) // a declaration that does not match its input
	}
	errs := o.errors
	if _, ok := reflect.TypeFor[I]().FieldByName("Body"); ok {
		// Any body can be malformed or too large.
		errs = append(errs, http.StatusBadRequest, http.StatusRequestEntityTooLarge)
	}
	if len(o.roles) > 0 {
		errs = append(errs, http.StatusUnauthorized, http.StatusForbidden)
	}
	errs = append(errs, http.StatusInternalServerError, http.StatusServiceUnavailable)
	slices.Sort(errs)
	errs = slices.Compact(errs)
	op := huma.Operation{
		OperationID:   o.id,
		Method:        o.method,
		Path:          o.path,
		Summary:       o.summary,
		Description:   o.description,
		Tags:          []string{o.tag},
		Errors:        errs,
		DefaultStatus: http.StatusOK,
		MaxBodyBytes:  s.cfg.MaxBodyBytes,
		Metadata:      map[string]any{metaOp: &o},
	}
	if len(o.roles) > 0 {
		op.Security = []map[string][]string{{"bearer": {}}}
		op.Description += fmt.Sprintf("\n\nRoles: %s.", roleList(o.roles))
	}
	huma.Register(s.api, op, func(ctx context.Context, in *I) (*O, error) {
		if err := check(ctx, in); err != nil {
			return nil, err
		}
		// The view's failed reads answer as the handler's own do.
		out, err := h(ctx, in)
		return out, s.viewErr(err)
	})
}

func (s *Server) registerOperations() {
	s.registerAuth()
	s.registerWorkspaces()
	s.registerInventory()
	s.registerGPRs()
	s.registerAPIKeys()
	s.registerTemplates()
	s.registerInference()
}

// principal returns the caller; operations with roles always have one.
func principal(ctx context.Context) *auth.Principal {
	if p := auth.FromContext(ctx); p != nil {
		return p
	}
	// Public operations have no principal; treat it as a caller with no
	// rights rather than crash.
	return &auth.Principal{}
}

func forbiddenWorkspace(p *auth.Principal, ws, what string) *envelope.Error {
	if p.Workspace == "" {
		return envelope.Errorf(http.StatusForbidden, envelope.KeyForbidden, "role %s may not %s", p.Role, what)
	}
	return envelope.Errorf(http.StatusForbidden, envelope.KeyForbidden,
		"this %s key is limited to workspace %q and may not %s in workspace %q", p.Role, p.Workspace, what, ws)
}

// kubeErr maps an apiserver error to an envelope error; what names the
// object ("workspace \"a\"").
// viewErr is the answer to a failed read of the view (view.ReadError): a
// failed read of the cluster as kubeErr makes it. Other errors, nil
// included, are returned as they are.
func (s *Server) viewErr(err error) error {
	var re *view.ReadError
	if errors.As(err, &re) {
		return s.kubeErr(re.Err, re.What)
	}
	return err
}

func (s *Server) kubeErr(err error, what string) error {
	var e *envelope.Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case apierrors.IsNotFound(err):
		return envelope.NotFound("%s not found", what)
	case apierrors.IsAlreadyExists(err):
		return envelope.New(http.StatusConflict, envelope.KeyAlreadyExists, what+" already exists", envelope.WithTitle("Already Exists"))
	case apierrors.IsConflict(err):
		return envelope.Conflict("%s was changed concurrently; retry", what)
	case apierrors.IsInvalid(err):
		var fields []envelope.FieldError
		if st, ok := err.(apierrors.APIStatus); ok && st.Status().Details != nil {
			for _, c := range st.Status().Details.Causes {
				fields = append(fields, envelope.FieldError{Field: apiField(c.Field), Reason: c.Message})
			}
		}
		if len(fields) == 0 {
			fields = append(fields, envelope.FieldError{Field: "body", Reason: err.Error()})
		}
		return envelope.Validation(fields...)
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), apierrors.IsTooManyRequests(err), apierrors.IsServiceUnavailable(err):
		s.log.Warn("kube-apiserver unavailable", zap.String("object", what), zap.Error(err))
		return envelope.New(http.StatusServiceUnavailable, envelope.KeyUnavailable, "the cluster is busy; retry shortly")
	}
	s.log.Error("kube-apiserver request failed", zap.String("object", what), zap.Error(err))
	return envelope.Internal()
}

// apiField turns a CRD field path ("spec.priority") into the API's name.
func apiField(f string) string {
	f = strings.TrimPrefix(f, "spec.")
	switch f {
	case "workspace":
		return "sliceName"
	}
	return f
}

func dnsLabel(field, v string) []envelope.FieldError {
	if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
		return []envelope.FieldError{{Field: field, Reason: strings.Join(errs, "; "), Value: v}}
	}
	return nil
}

func isAlreadyExists(err error) bool { return apierrors.IsAlreadyExists(err) }

// awaitCache waits, briefly, until the cache has seen obj at its current
// resourceVersion (or, gone true, no longer has it), so that a client that
// writes and then reads sees its write. It gives up quietly after two
// seconds: the write has happened either way.
func (s *Server) awaitCache(ctx context.Context, obj client.Object, gone bool) {
	key := client.ObjectKeyFromObject(obj)
	rv := obj.GetResourceVersion()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	probe := obj.DeepCopyObject().(client.Object)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		err := s.cache.Get(ctx, key, probe)
		switch {
		case gone && (apierrors.IsNotFound(err) || (err == nil && probe.GetDeletionTimestamp() != nil)):
			return
		case !gone && err == nil && rvAtLeast(probe.GetResourceVersion(), rv):
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rvAtLeast reports whether resourceVersion have is at least want. They are
// opaque strings by contract; etcd-backed apiservers write integers, so
// compare those numerically and anything else by equality.
func rvAtLeast(have, want string) bool {
	h, err1 := strconv.ParseUint(have, 10, 64)
	w, err2 := strconv.ParseUint(want, 10, 64)
	if err1 != nil || err2 != nil {
		return have == want
	}
	return h >= w
}
