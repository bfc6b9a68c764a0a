package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Single sign-on: the API accepts ID tokens of one OpenID Provider beside
// its own bearer tokens. go-oidc checks the issuer, the audience (the
// client id), the expiry and the signature against the provider's JWKS,
// which it fetches again when a token names a key it does not know (key
// rotation). Who may do what comes from a mapping in a ConfigMap, read
// fresh every mappingTTL: the token's groups (and its user) to a role and
// workspace. Each request carries the groups of its token, so a user
// removed from a group loses that access at their next token.

// DefaultOIDCRolesConfigMap is the ConfigMap (in the API's namespace) that
// maps OIDC groups and users to roles; its key is OIDCRolesKey.
const (
	DefaultOIDCRolesConfigMap = "gpuspace-oidc-roles"
	OIDCRolesKey              = "roles.yaml"
	mappingTTL                = 10 * time.Second
)

// ErrNoRole is an OIDC identity the mapping gives no role.
var ErrNoRole = errors.New("no gpuspace role for this identity")

// OIDCConfig configures single sign-on (gpuspace serve --oidc-*).
type OIDCConfig struct {
	// IssuerURL is the provider's issuer; its discovery document is at
	// IssuerURL/.well-known/openid-configuration.
	IssuerURL string
	// ClientID is the audience ID tokens must have.
	ClientID string
	// ClientSecret is gpuspace's secret at the provider, for the console's
	// code exchange; empty for a public client (PKCE alone).
	ClientSecret string
	// GroupsClaim names the claim with the user's groups; default "groups".
	GroupsClaim string
	// UsernameClaim names the claim that identifies the user; default
	// "email".
	UsernameClaim string
	// RolesConfigMap is the mapping's ConfigMap; default
	// DefaultOIDCRolesConfigMap.
	RolesConfigMap string
}

// Grant is a role, limited to a workspace or not (Owner: never).
type Grant struct {
	Role      Role   `json:"role"`
	Workspace string `json:"workspace,omitempty"`
}

// RoleMapping is the ConfigMap's roles.yaml: grants by group and by user.
// A user's own grant wins; else the strongest of their groups' (Owner,
// then Editor, then Viewer; a global grant over a workspace's).
type RoleMapping struct {
	Groups map[string]Grant `json:"groups,omitempty"`
	Users  map[string]Grant `json:"users,omitempty"`
}

// Resolve is the grant of a user with these groups, if any.
func (m RoleMapping) Resolve(user string, groups []string) (Grant, bool) {
	if g, ok := m.Users[user]; ok && user != "" {
		return g, true
	}
	var best Grant
	found := false
	for _, name := range groups {
		g, ok := m.Groups[name]
		if !ok {
			continue
		}
		if !found || stronger(g, best) {
			best, found = g, true
		}
	}
	return best, found
}

var roleRank = map[Role]int{RoleViewer: 1, RoleEditor: 2, RoleOwner: 3}

func stronger(a, b Grant) bool {
	if roleRank[a.Role] != roleRank[b.Role] {
		return roleRank[a.Role] > roleRank[b.Role]
	}
	if (a.Workspace == "") != (b.Workspace == "") {
		return a.Workspace == ""
	}
	return a.Workspace < b.Workspace // deterministic among equals
}

// ParseRoleMapping reads roles.yaml, refusing unknown roles and workspace
// Owners.
func ParseRoleMapping(b []byte) (RoleMapping, error) {
	var m RoleMapping
	if err := yaml.UnmarshalStrict(b, &m); err != nil {
		return m, err
	}
	check := func(kind, name string, g Grant) error {
		switch {
		case roleRank[g.Role] == 0:
			return fmt.Errorf("%s %q: role %q: want Owner, Editor or Viewer", kind, name, g.Role)
		case g.Role == RoleOwner && g.Workspace != "":
			return fmt.Errorf("%s %q: an Owner is not limited to a workspace", kind, name)
		case g.Role == RoleEditor && g.Workspace == "":
			return fmt.Errorf("%s %q: an Editor needs a workspace", kind, name)
		}
		return nil
	}
	for _, kind := range []string{"group", "user"} {
		set := m.Groups
		if kind == "user" {
			set = m.Users
		}
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			if err := check(kind, n, set[n]); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}

// OIDC verifies ID tokens and maps them to principals.
type OIDC struct {
	cfg       OIDCConfig
	reader    client.Reader
	namespace string
	now       func() time.Time

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	mapping  RoleMapping
	mapErr   error
	mapAt    time.Time
}

// NewOIDC returns the verifier for cfg; reader reads the mapping's
// ConfigMap in namespace. The provider is discovered at the first token,
// so a provider that is down at start delays only SSO logins.
func NewOIDC(cfg OIDCConfig, reader client.Reader, namespace string, now func() time.Time) *OIDC {
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "email"
	}
	if cfg.RolesConfigMap == "" {
		cfg.RolesConfigMap = DefaultOIDCRolesConfigMap
	}
	if now == nil {
		now = time.Now
	}
	return &OIDC{cfg: cfg, reader: reader, namespace: namespace, now: now}
}

// Verify checks an ID token and returns its principal: ErrTokenExpired,
// ErrTokenSignature (any other refusal of the token), ErrNoRole, or an
// error of the provider or the mapping.
func (o *OIDC) Verify(ctx context.Context, raw string) (*Principal, error) {
	v, err := o.verifierFor(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return nil, ErrTokenExpired
		}
		// The reason (issuer, audience, signature) without the token.
		return nil, fmt.Errorf("%w: %s", ErrTokenSignature, oidcReason(err))
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrTokenMalformed, err)
	}
	user, _ := claims[o.cfg.UsernameClaim].(string)
	if user == "" {
		user = tok.Subject
	}
	groups := stringsOf(claims[o.cfg.GroupsClaim])
	m, err := o.roleMapping(ctx)
	if err != nil {
		return nil, err
	}
	g, ok := m.Resolve(user, groups)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoRole, user)
	}
	return &Principal{KeyID: "oidc:" + tok.Subject, Name: user, Role: g.Role, Workspace: g.Workspace, TokenExpiry: tok.Expiry}, nil
}

func (o *OIDC) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	// Discovery outlives the request that triggered it: the key set
	// keeps using this context for later fetches.
	p, err := oidc.NewProvider(context.WithoutCancel(ctx), o.cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("OIDC discovery at %s: %w", o.cfg.IssuerURL, err)
	}
	o.provider, o.verifier = p, p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID, Now: o.now})
	return o.verifier, nil
}

// OAuth2 is the provider's OAuth 2.0 client configuration for gpuspace
// (client id and secret, endpoints from discovery, the scopes that bring
// the claims the mapping reads), for the console's log-in.
func (o *OIDC) OAuth2(ctx context.Context, redirectURL string) (*oauth2.Config, error) {
	if _, err := o.verifierFor(ctx); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: o.provider.Endpoint(),
		RedirectURL: redirectURL, Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"}}, nil
}

// OIDC is the Authenticator's single sign-on, nil without.
func (a *Authenticator) OIDC() *OIDC { return a.oidc }

// roleMapping is the ConfigMap's mapping, read again every mappingTTL; no
// ConfigMap is an empty mapping (nobody gets a role by SSO).
func (o *OIDC) roleMapping(ctx context.Context) (RoleMapping, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.mapAt.IsZero() && o.now().Sub(o.mapAt) < mappingTTL {
		return o.mapping, o.mapErr
	}
	var cm corev1.ConfigMap
	err := o.reader.Get(ctx, types.NamespacedName{Namespace: o.namespace, Name: o.cfg.RolesConfigMap}, &cm)
	switch {
	case apierrors.IsNotFound(err):
		o.mapping, o.mapErr = RoleMapping{}, nil
	case err != nil:
		return RoleMapping{}, fmt.Errorf("read the OIDC role mapping: %w", err)
	default:
		o.mapping, o.mapErr = ParseRoleMapping([]byte(cm.Data[OIDCRolesKey]))
		if o.mapErr != nil {
			o.mapErr = fmt.Errorf("ConfigMap %s/%s %s: %w", o.namespace, o.cfg.RolesConfigMap, OIDCRolesKey, o.mapErr)
		}
	}
	o.mapAt = o.now()
	return o.mapping, o.mapErr
}

// oidcReason is go-oidc's error, cut before anything that could quote the
// token.
func oidcReason(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "oidc: ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// isOwnToken reports whether a bearer token is one of ours (POST /auth),
// by its fixed header; anything else goes to the OIDC verifier.
func isOwnToken(token string) bool {
	h, _, _ := strings.Cut(token, ".")
	return h == header
}

// SetOIDC makes a accept the ID tokens o verifies, beside its own tokens.
// Call it before a is used.
func (a *Authenticator) SetOIDC(o *OIDC) { a.oidc = o }
