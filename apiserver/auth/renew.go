package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Renew exchanges a valid token for a fresh one of the same key, as if the
// key had been presented again: the key must still exist and be valid
// (Verify), and the new token never outlives it. The console renews its
// session cookie with it, so that the browser never holds the API key.
func (a *Authenticator) Renew(ctx context.Context, token string) (string, time.Time, *Principal, error) {
	p, err := a.Verify(ctx, token)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	sec, err := a.secret(ctx, p.KeyID)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	info, err := infoOf(sec)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	now := a.now()
	exp := now.Add(a.ttl)
	if info.ValidUntil != nil && info.ValidUntil.Before(exp) {
		exp = *info.ValidUntil
	}
	signer, err := a.keys.SigningKeys(ctx)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	tok, err := signer.Sign(Claims{
		KeyID: p.KeyID, KeyUID: string(sec.UID), Role: info.Role, Workspace: info.Workspace,
		IssuedAt: now.Unix(), ExpiresAt: exp.Unix(),
	})
	if err != nil {
		return "", time.Time{}, nil, err
	}
	p.TokenExpiry = time.Unix(exp.Unix(), 0)
	return tok, exp, p, nil
}

// CSRFToken is the anti-forgery token bound to a session token: a page
// that authenticates with the session cookie sends it in a header on every
// request that changes something. It is derived from the token (which the
// page cannot read: the cookie is HttpOnly), so another site can neither
// read nor make it, and it changes with every renewal.
func CSRFToken(token string) string {
	sum := sha256.Sum256([]byte("gpuspace-csrf\x00" + token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
