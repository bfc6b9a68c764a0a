// Package auth is gpuspace's API authentication and authorisation: API keys
// (random, shown once, stored as SHA-256 hashes in Secrets), the signed
// short-lived bearer tokens POST /api/v1/auth exchanges them for, and the
// roles Owner, Editor and Viewer.
//
// Nothing here keeps state in memory: keys live in Secrets, a token names
// its key, and a token is only as good as its key is now — deleting or
// expiring a key revokes every token issued for it.
package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Role is what an API key may do.
type Role string

// Roles. Owner may do everything. Editor manages the GPRs of one workspace
// (and reads it). Viewer reads — everything, or one workspace.
const (
	RoleOwner  Role = "Owner"
	RoleEditor Role = "Editor"
	RoleViewer Role = "Viewer"
)

// Roles lists every role, most powerful first.
var Roles = []Role{RoleOwner, RoleEditor, RoleViewer}

// ParseRole reads a role name case-insensitively ("owner", "Owner").
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if strings.EqualFold(s, string(r)) {
			return r, nil
		}
	}
	return "", fmt.Errorf("role %q: want Owner, Editor or Viewer", s)
}

// Principal is who is calling: the API key behind a verified token.
type Principal struct {
	// KeyID is the API key's id (not secret).
	KeyID string
	// Name is the API key's name.
	Name string
	// Role of the key.
	Role Role
	// Workspace the key is limited to; empty means every workspace (Owner,
	// or a global Viewer).
	Workspace string
	// TokenExpiry is when the bearer token presented expires.
	TokenExpiry time.Time
}

// Allowed reports whether the principal's role is among roles.
func (p *Principal) Allowed(roles []Role) bool {
	return p != nil && slices.Contains(roles, p.Role)
}

// CanRead reports whether the principal may read workspace ws and its GPRs.
func (p *Principal) CanRead(ws string) bool {
	return p != nil && (p.Workspace == "" || p.Workspace == ws)
}

// CanWriteGPRs reports whether the principal may create, change and delete
// the GPRs of workspace ws, and get its kubeconfig.
func (p *Principal) CanWriteGPRs(ws string) bool {
	if p == nil {
		return false
	}
	switch p.Role {
	case RoleOwner:
		return true
	case RoleEditor:
		return p.Workspace == ws
	}
	return false
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal in ctx, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
