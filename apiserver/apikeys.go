package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuspace/gpuspace/apiserver/auth"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/apiserver/schema"
)

// AuthRequest is the body of POST /auth.
type AuthRequest struct {
	_      struct{} `additionalProperties:"true"`
	APIKey string   `json:"apiKey" minLength:"1" maxLength:"256" doc:"An API key (from POST /api/v1/api-key or gpuspace apikey create)"`
}

// Token is the data of POST /auth: the token and nothing else, as EGS
// answers. The EGS Python SDK builds AuthenticationResponse(**data), which
// takes only token, so any other field here breaks every SDK user; the
// expiry travels in the HeaderTokenExpiresAt header instead.
type Token struct {
	Token string `json:"token" doc:"Send as Authorization: Bearer <token>"`
}

// HeaderTokenExpiresAt is the response header of POST /auth that says when
// the token stops working (RFC 3339, UTC).
const HeaderTokenExpiresAt = "X-Token-Expires-At"

// authOutput is the answer of POST /auth: the envelope around Token, and
// the expiry as a header.
type authOutput struct {
	ExpiresAt string `header:"X-Token-Expires-At" doc:"When the token stops working (RFC 3339, UTC); get a new one before then"`
	Body      envelope.Response[Token]
}

// APIKeyRequest is the body of POST /api-key.
type APIKeyRequest struct {
	_             struct{}                `additionalProperties:"true"`
	Name          string                  `json:"name" minLength:"1" maxLength:"253" doc:"Name of the key"`
	UserName      string                  `json:"userName,omitempty" maxLength:"256" doc:"Whom the key is for"`
	Description   string                  `json:"description,omitempty" maxLength:"1024"`
	Role          string                  `json:"role" enum:"Owner,Editor,Viewer,owner,editor,viewer" doc:"Owner: everything. Editor: the GPRs and kubeconfig of workspaceName. Viewer: reads, of workspaceName if given, else of everything"`
	ValidUntil    string                  `json:"validUntil,omitempty" maxLength:"40" doc:"When the key stops working: RFC 3339, or a date (YYYY-MM-DD, valid through that day, UTC); empty for never"`
	WorkspaceName schema.OptionalDNSLabel `json:"workspaceName,omitempty" doc:"Workspace the key is limited to (required for Editor, optional for Viewer, empty for Owner)"`
	Validity      string                  `json:"validity,omitempty" maxLength:"40" doc:"Another name of validUntil, as the EGS Python SDK sends it (YYYY-MM-DD)"`
}

// APIKeyCreated is the data of POST /api-key: the key, shown this once.
type APIKeyCreated struct {
	APIKey string `json:"apiKey" doc:"The key; it is not stored and cannot be shown again"`
	auth.KeyInfo
}

// APIKeyRef names a key to delete: by id, by name, or the key itself.
type APIKeyRef struct {
	_        struct{} `additionalProperties:"true"`
	APIKeyID string   `json:"apiKeyId,omitempty" maxLength:"64" doc:"Id of the key"`
	Name     string   `json:"name,omitempty" maxLength:"253" doc:"Name of the key (if no other key has it)"`
	APIKey   string   `json:"apiKey,omitempty" maxLength:"256" doc:"The key itself"`
}

// APIKeyList is the data of GET /api-key/list.
type APIKeyList struct {
	Items []auth.KeyInfo `json:"items"`
}

type authInput struct {
	Body AuthRequest
}

type apiKeyCreateInput struct {
	Body APIKeyRequest
}

type apiKeyDeleteInput struct {
	Body APIKeyRef
}

type apiKeyListInput struct {
	WorkspaceName schema.OptionalDNSLabel `query:"workspaceName" doc:"Only keys limited to this workspace"`
}

func (s *Server) registerAuth() {
	register(s, opSpec{
		id: "authenticate", method: http.MethodPost, path: "/api/v1/auth", tag: "Authentication",
		summary:     "Exchange an API key for a bearer token",
		description: "Returns a bearer token for the API key, valid for 15 minutes by default. Send it as Authorization: Bearer <token>. Deleting or expiring the key revokes its tokens. The data is {token} alone, as EGS answers (the EGS Python SDK accepts nothing else there); the header X-Token-Expires-At says when the token expires.",
		roles:       rolesPublic,
		errors:      []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusUnprocessableEntity},
	}, s.authenticate)
	register(s, opSpec{
		id: "healthcheck", method: http.MethodGet, path: "/api/v1/healthcheck", tag: "Health",
		summary: "Check the API is up", description: "Answers OK while the API serves.",
		roles: rolesPublic, readOnly: true, idempotent: true,
	}, func(context.Context, *noInput) (*envelope.Output[health], error) {
		return envelope.OK(health{Status: "ok"}), nil
	})
}

func (s *Server) registerAPIKeys() {
	const tag = "API keys"
	register(s, opSpec{
		id: "createAPIKey", method: http.MethodPost, path: "/api/v1/api-key", tag: tag,
		summary:     "Create an API key",
		description: "Creates an API key with a role (Owner, Editor of one workspace, Viewer of all or one workspace) and an optional validity date. The key is in the answer and never again: it is stored only as a hash.",
		roles:       rolesOwner, mcpName: "apikeys_create",
		guidance: "The answer holds the new API key, shown this once: hand it to the user, do not echo it into chat logs.",
		errors:   []int{http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, s.createAPIKey)
	register(s, opSpec{
		id: "deleteAPIKey", method: http.MethodDelete, path: "/api/v1/api-key", tag: tag,
		summary:     "Delete an API key",
		description: "Deletes an API key by id, name or the key itself; every token issued for it stops working at once.",
		roles:       rolesOwner, destructive: true, mcpName: "apikeys_delete",
		guidance: "Every token issued for the key stops working at once; deleting the key this session uses ends the session's access.",
		errors:   []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadRequest},
	}, s.deleteAPIKey)
	register(s, opSpec{
		id: "listAPIKeys", method: http.MethodGet, path: "/api/v1/api-key/list", tag: tag,
		summary:     "List API keys",
		description: "Lists API keys (never the keys themselves): id, name, user, role, workspace, validity.",
		roles:       rolesOwner, readOnly: true, idempotent: true, mcpName: "apikeys_list",
	}, s.listAPIKeys)
}

func (s *Server) authenticate(ctx context.Context, in *authInput) (*authOutput, error) {
	a := s.authenticator()
	if a == nil {
		return nil, envelope.New(http.StatusServiceUnavailable, envelope.KeyUnavailable, "the API is starting; retry shortly")
	}
	tok, exp, err := a.Exchange(ctx, strings.TrimSpace(in.Body.APIKey))
	switch {
	case err == nil:
		return &authOutput{ExpiresAt: exp.UTC().Format(time.RFC3339), Body: envelope.OK(Token{Token: tok}).Body}, nil
	case errors.Is(err, auth.ErrUnknownKey):
		return nil, unauthenticated("Unauthenticated")
	case errors.Is(err, auth.ErrKeyExpired):
		return nil, unauthenticated("Api Key has expired")
	case errors.Is(err, auth.ErrKeyRecordInvalid):
		s.log.Warn("API key record is invalid", zap.Error(err))
		const msg = "Api Key Configuration is invalid. Request a new API-key or contact administrator"
		return nil, envelope.New(http.StatusBadRequest, envelope.KeyApiKeyInvalid, msg,
			envelope.WithStatus(envelope.KeyApiKeyInvalid), envelope.WithTitle(msg), envelope.WithoutData())
	}
	return nil, s.kubeErr(err, "API key")
}

// ParseValidUntil reads a key validity: RFC 3339, or a date meaning the
// end of that day (UTC). Empty means never.
func ParseValidUntil(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("validUntil %q: want RFC 3339 (2026-12-31T23:59:59Z) or a date (2026-12-31)", s)
	}
	return d.AddDate(0, 0, 1), nil
}

func (s *Server) createAPIKey(ctx context.Context, in *apiKeyCreateInput) (*envelope.Output[APIKeyCreated], error) {
	b := in.Body
	role, err := auth.ParseRole(b.Role)
	if err != nil {
		return nil, envelope.Validation(envelope.FieldError{Field: "role", Reason: err.Error()})
	}
	field, validity := "validUntil", b.ValidUntil
	if validity == "" {
		field, validity = "validity", b.Validity
	} else if b.Validity != "" && b.Validity != b.ValidUntil {
		return nil, envelope.Validation(envelope.FieldError{Field: "validity", Reason: fmt.Sprintf("%q differs from validUntil %q; send one of them", b.Validity, b.ValidUntil)})
	}
	until, err := ParseValidUntil(validity)
	if err != nil {
		return nil, envelope.Validation(envelope.FieldError{Field: field, Reason: err.Error()})
	}
	if b.WorkspaceName != "" {
		if _, err := s.workspace(ctx, string(b.WorkspaceName)); err != nil {
			var e *envelope.Error
			if errors.As(err, &e) && e.StatusCode == http.StatusNotFound {
				return nil, envelope.Validation(envelope.FieldError{Field: "workspaceName", Reason: fmt.Sprintf("workspace %q does not exist", b.WorkspaceName)})
			}
			return nil, err
		}
	}
	key, info, err := auth.CreateKey(ctx, s.client, s.cfg.Namespace, auth.KeyRequest{
		Name: b.Name, UserName: b.UserName, Description: b.Description, Role: role, Workspace: string(b.WorkspaceName), ValidUntil: until,
	}, s.now())
	if errors.Is(err, auth.ErrInvalidKeyRequest) {
		return nil, envelope.New(http.StatusUnprocessableEntity, envelope.KeyValidation, strings.TrimPrefix(err.Error(), auth.ErrInvalidKeyRequest.Error()+": "))
	}
	if err != nil {
		return nil, s.kubeErr(err, "API key")
	}
	// A list right after the create reads the cache: wait until it has the
	// key (any resourceVersion, "0" is below all).
	s.awaitCache(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.cfg.Namespace, Name: auth.SecretPrefix + info.ID, ResourceVersion: "0"}}, false)
	s.log.Info("API key created", zap.String("id", info.ID), zap.String("name", info.Name), zap.String("role", string(info.Role)),
		zap.String("by", principal(ctx).KeyID))
	return envelope.OK(APIKeyCreated{APIKey: key, KeyInfo: info}), nil
}

func (s *Server) deleteAPIKey(ctx context.Context, in *apiKeyDeleteInput) (*envelope.Output[envelope.Empty], error) {
	ref := in.Body.APIKeyID
	if ref == "" {
		ref = in.Body.APIKey
	}
	if ref == "" {
		ref = in.Body.Name
	}
	if ref == "" {
		return nil, envelope.Validation(envelope.FieldError{Field: "apiKeyId", Reason: "name the key: apiKeyId, name or apiKey is required"})
	}
	info, err := auth.DeleteKey(ctx, s.client, s.cfg.Namespace, ref)
	switch {
	case errors.Is(err, auth.ErrKeyNotFound):
		return nil, envelope.NotFound("API key not found")
	case errors.Is(err, auth.ErrKeyAmbiguous):
		return nil, envelope.Conflict("%s", err.Error())
	case err != nil:
		return nil, s.kubeErr(err, "API key")
	}
	// Tokens of the key stop working once the cache sees it gone; wait for
	// that, so the caller's next request already finds them revoked.
	gone := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.cfg.Namespace, Name: auth.SecretPrefix + info.ID}}
	s.awaitCache(ctx, gone, true)
	s.log.Info("API key deleted", zap.String("id", info.ID), zap.String("name", info.Name), zap.String("by", principal(ctx).KeyID))
	return envelope.OK(envelope.Empty{}), nil
}

func (s *Server) listAPIKeys(ctx context.Context, in *apiKeyListInput) (*envelope.Output[APIKeyList], error) {
	keys, err := auth.ListKeys(ctx, s.cache, s.cfg.Namespace, string(in.WorkspaceName))
	if err != nil {
		return nil, s.kubeErr(err, "API keys")
	}
	return envelope.OK(APIKeyList{Items: nonNil(keys)}), nil
}
