package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Token errors. Verify wraps them; all mean 401.
var (
	ErrTokenMalformed = errors.New("bearer token is malformed")
	ErrTokenSignature = errors.New("bearer token signature is invalid")
	ErrTokenExpired   = errors.New("bearer token has expired")
)

// Claims are what a bearer token says. It is a JWT (HS256) so that tools
// can decode it, but nothing trusts what it says beyond the key id: role
// and workspace are read from the key's Secret on every request.
type Claims struct {
	Issuer    string `json:"iss"`
	KeyID     string `json:"sub"`
	KeyUID    string `json:"uid"`
	Role      Role   `json:"role"`
	Workspace string `json:"ws,omitempty"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

const issuer = "gpuspace"

// header is the only JWT header gpuspace issues or accepts: fixing it
// rules out algorithm confusion ("alg":"none" and friends).
var header = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// Signer signs bearer tokens with an HMAC-SHA256 key and verifies them
// against that key and the keys it replaced, so that rotating the key does
// not sign everyone out.
type Signer struct {
	key      []byte
	previous [][]byte
}

// NewSigner returns a Signer that signs with key and also accepts tokens
// signed with previous keys. Every key must be at least 32 bytes.
func NewSigner(key []byte, previous ...[]byte) (*Signer, error) {
	for _, k := range append([][]byte{key}, previous...) {
		if len(k) < 32 {
			return nil, fmt.Errorf("signing key is %d bytes, want at least 32", len(k))
		}
	}
	s := &Signer{key: append([]byte(nil), key...)}
	for _, k := range previous {
		s.previous = append(s.previous, append([]byte(nil), k...))
	}
	return s, nil
}

// SigningKeys returns s itself: a fixed Signer is a KeySource.
func (s *Signer) SigningKeys(context.Context) (*Signer, error) { return s, nil }

// Sign returns the token for c.
func (s *Signer) Sign(c Claims) (string, error) {
	c.Issuer = issuer
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	signed := header + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(s.mac(signed)), nil
}

func (s *Signer) mac(signed string) []byte { return mac(s.key, signed) }

func mac(key []byte, signed string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// Verify checks the token's form, signature and expiry at now and returns
// its claims. It does not check that the key still exists: Authenticator
// does.
func (s *Signer) Verify(token string, now time.Time) (*Claims, error) {
	h, rest, ok := strings.Cut(token, ".")
	if !ok || h != header {
		return nil, ErrTokenMalformed
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return nil, ErrTokenMalformed
	}
	// Strict: one signature, one encoding (no malleable trailing bits).
	gotSig, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil {
		return nil, ErrTokenMalformed
	}
	signed := token[:len(h)+1+len(payload)]
	valid := subtle.ConstantTimeCompare(gotSig, s.mac(signed)) == 1
	for _, k := range s.previous {
		if valid {
			break
		}
		valid = subtle.ConstantTimeCompare(gotSig, mac(k, signed)) == 1
	}
	if !valid {
		return nil, ErrTokenSignature
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, ErrTokenMalformed
	}
	var c Claims
	if err := json.Unmarshal(raw, &c); err != nil || c.Issuer != issuer || c.KeyID == "" {
		return nil, ErrTokenMalformed
	}
	if now.Unix() >= c.ExpiresAt {
		return nil, ErrTokenExpired
	}
	return &c, nil
}
