package auth

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Authenticator exchanges API keys for bearer tokens and turns tokens back
// into principals. It reads key Secrets from an informer cache, falling back
// to the apiserver for a key the cache has not seen yet (one created a
// moment ago), so a fresh key works at once.
type Authenticator struct {
	keys      KeySource
	cache     client.Reader
	live      client.Reader
	namespace string
	ttl       time.Duration
	now       func() time.Time
	oidc      *OIDC // single sign-on, when configured (SetOIDC)
}

// DefaultTokenTTL is how long a bearer token lives, as in EGS.
const DefaultTokenTTL = 15 * time.Minute

// NewAuthenticator returns an Authenticator for the key Secrets in
// namespace that signs and verifies tokens with the keys from keys. cache
// serves reads; live (may be nil) is asked on a cache miss. ttl 0 means
// DefaultTokenTTL; now nil means time.Now.
func NewAuthenticator(keys KeySource, cache, live client.Reader, namespace string, ttl time.Duration, now func() time.Time) *Authenticator {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Authenticator{keys: keys, cache: cache, live: live, namespace: namespace, ttl: ttl, now: now}
}

// Exchange checks an API key and returns a bearer token for it and the
// token's expiry. It fails with ErrUnknownKey, ErrKeyExpired or
// ErrKeyRecordInvalid.
func (a *Authenticator) Exchange(ctx context.Context, key string) (string, time.Time, error) {
	id, _, ok := parseKey(key)
	if !ok {
		return "", time.Time{}, ErrUnknownKey
	}
	sec, err := a.secret(ctx, id)
	if err != nil {
		return "", time.Time{}, err
	}
	if !matches(sec, key) {
		return "", time.Time{}, ErrUnknownKey
	}
	info, err := infoOf(sec)
	if err != nil {
		return "", time.Time{}, err
	}
	now := a.now()
	if info.ValidUntil != nil && !now.Before(*info.ValidUntil) {
		return "", time.Time{}, ErrKeyExpired
	}
	exp := now.Add(a.ttl)
	// A token never outlives its key.
	if info.ValidUntil != nil && info.ValidUntil.Before(exp) {
		exp = *info.ValidUntil
	}
	signer, err := a.keys.SigningKeys(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := signer.Sign(Claims{
		KeyID: id, KeyUID: string(sec.UID), Role: info.Role, Workspace: info.Workspace,
		IssuedAt: now.Unix(), ExpiresAt: exp.Unix(),
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return tok, exp, nil
}

// Verify checks a bearer token — signature, expiry — and that its key still
// exists (the very Secret it was issued for) and is still valid, and returns
// the principal with the role and workspace the key has now.
func (a *Authenticator) Verify(ctx context.Context, token string) (*Principal, error) {
	if a.oidc != nil && !isOwnToken(token) {
		return a.oidc.Verify(ctx, token)
	}
	now := a.now()
	signer, err := a.keys.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	c, err := signer.Verify(token, now)
	if err != nil {
		return nil, err
	}
	sec, err := a.secret(ctx, c.KeyID)
	if err != nil {
		return nil, fmt.Errorf("token's key: %w", err)
	}
	if string(sec.UID) != c.KeyUID {
		return nil, fmt.Errorf("token's key was replaced: %w", ErrUnknownKey)
	}
	info, err := infoOf(sec)
	if err != nil {
		return nil, err
	}
	if info.ValidUntil != nil && !now.Before(*info.ValidUntil) {
		return nil, ErrKeyExpired
	}
	return &Principal{
		KeyID: info.ID, Name: info.Name, Role: info.Role, Workspace: info.Workspace,
		TokenExpiry: time.Unix(c.ExpiresAt, 0),
	}, nil
}

func (a *Authenticator) secret(ctx context.Context, id string) (*corev1.Secret, error) {
	name := types.NamespacedName{Namespace: a.namespace, Name: SecretPrefix + id}
	var sec corev1.Secret
	err := a.cache.Get(ctx, name, &sec)
	if apierrors.IsNotFound(err) && a.live != nil {
		err = a.live.Get(ctx, name, &sec)
	}
	if apierrors.IsNotFound(err) {
		return nil, ErrUnknownKey
	}
	if err != nil {
		return nil, fmt.Errorf("read API key %s: %w", id, err)
	}
	if sec.Labels[LabelAPIKey] != LabelValueKey {
		return nil, ErrUnknownKey
	}
	return &sec, nil
}
