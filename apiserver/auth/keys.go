package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DefaultNamespace is where API key and signing key Secrets live unless
// configured otherwise.
const DefaultNamespace = "gpuspace-system"

// Labels and names of the Secrets gpuspace keeps.
const (
	// LabelAPIKey marks the Secrets the API's cache watches: API keys
	// (value LabelValueKey) and the token signing key (LabelValueSigningKey).
	LabelAPIKey = "gpuspace.io/api-key"
	// LabelValueKey is LabelAPIKey's value on an API key Secret.
	LabelValueKey = "true"
	// LabelValueSigningKey is LabelAPIKey's value on the signing key Secret.
	LabelValueSigningKey = "signing-key"
	// LabelAPIKeyWorkspace on an API key Secret names the workspace the key
	// is limited to.
	LabelAPIKeyWorkspace = "gpuspace.io/api-key-workspace"
	// SecretPrefix starts every API key Secret's name; the key id follows.
	SecretPrefix = "gpuspace-apikey-"
	// SigningKeySecret holds the HMAC key bearer tokens are signed with.
	SigningKeySecret = "gpuspace-token-signing-key"
)

// Data keys of an API key Secret. The key itself is never stored: only its
// SHA-256. A 256-bit random key needs no slow hash: there is nothing to
// brute-force.
const (
	dataHash        = "sha256"
	dataName        = "name"
	dataUserName    = "userName"
	dataDescription = "description"
	dataRole        = "role"
	dataWorkspace   = "workspaceName"
	dataValidUntil  = "validUntil"
)

// keyPrefix starts every API key: "gps_<id>_<secret>". The id names the
// Secret, so a key is looked up, not searched for.
const keyPrefix = "gps_"

// Errors of key management and exchange.
var (
	// ErrUnknownKey: no such key, or the key does not match (401).
	ErrUnknownKey = errors.New("unknown API key")
	// ErrKeyExpired: the key's validity date has passed (401).
	ErrKeyExpired = errors.New("API key has expired")
	// ErrKeyRecordInvalid: the key's Secret is damaged (400, as EGS).
	ErrKeyRecordInvalid = errors.New("API key record is invalid")
	// ErrKeyNotFound: delete of a key that does not exist (404).
	ErrKeyNotFound = errors.New("API key not found")
	// ErrKeyAmbiguous: delete by a name several keys share (409).
	ErrKeyAmbiguous = errors.New("several API keys have this name; delete by id")
	// ErrInvalidKeyRequest: a create request that cannot be honoured (422).
	ErrInvalidKeyRequest = errors.New("invalid API key request")
)

// KeyRequest describes an API key to create.
type KeyRequest struct {
	// Name of the key, for people.
	Name string
	// UserName of whom the key is for.
	UserName string
	// Description, free text.
	Description string
	// Role of the key.
	Role Role
	// Workspace limits an Editor (required) or a Viewer (optional) to one
	// workspace. Owners have none.
	Workspace string
	// ValidUntil, if not zero, is when the key stops working.
	ValidUntil time.Time
}

// KeyInfo is what is known of a key, without the key.
type KeyInfo struct {
	ID          string     `json:"apiKeyId" doc:"Key id; not secret"`
	Name        string     `json:"name"`
	UserName    string     `json:"userName"`
	Description string     `json:"description"`
	Role        Role       `json:"role" enum:"Owner,Editor,Viewer"`
	Workspace   string     `json:"workspaceName" doc:"Workspace the key is limited to; empty for all"`
	ValidUntil  *time.Time `json:"validUntil" nullable:"true" doc:"When the key stops working; null for never"`
	CreatedAt   time.Time  `json:"createdAt"`
}

// Validate checks a key request.
func (r KeyRequest) Validate() error {
	var problems []string
	if strings.TrimSpace(r.Name) == "" {
		problems = append(problems, "name: is required")
	}
	switch r.Role {
	case RoleOwner:
		if r.Workspace != "" {
			problems = append(problems, "workspaceName: an Owner key is not limited to a workspace; leave it empty")
		}
	case RoleEditor:
		if r.Workspace == "" {
			problems = append(problems, "workspaceName: an Editor key needs the workspace it may edit")
		}
	case RoleViewer:
	default:
		problems = append(problems, fmt.Sprintf("role: %q is not Owner, Editor or Viewer", r.Role))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidKeyRequest, strings.Join(problems, "; "))
	}
	return nil
}

// CreateKey creates an API key for req in namespace and returns the key —
// the only time it is ever seen — and its record. now is the creation
// time; validity in the past is refused.
func CreateKey(ctx context.Context, c client.Client, namespace string, req KeyRequest, now time.Time) (string, KeyInfo, error) {
	if r, err := ParseRole(string(req.Role)); err == nil {
		req.Role = r // "owner" from a command line is Owner
	}
	if err := req.Validate(); err != nil {
		return "", KeyInfo{}, err
	}
	if !req.ValidUntil.IsZero() && !req.ValidUntil.After(now) {
		return "", KeyInfo{}, fmt.Errorf("%w: validUntil: %s is not in the future", ErrInvalidKeyRequest, req.ValidUntil.Format(time.RFC3339))
	}
	for range 3 { // an id collision is astronomically unlikely; retry anyway
		id, secret, err := newKeyMaterial()
		if err != nil {
			return "", KeyInfo{}, err
		}
		key := keyPrefix + id + "_" + secret
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name:      SecretPrefix + id,
				Namespace: namespace,
				Labels:    map[string]string{LabelAPIKey: LabelValueKey},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{
				dataHash:        []byte(hashKey(key)),
				dataName:        []byte(req.Name),
				dataUserName:    []byte(req.UserName),
				dataDescription: []byte(req.Description),
				dataRole:        []byte(req.Role),
				dataWorkspace:   []byte(req.Workspace),
			},
		}
		if req.Workspace != "" {
			sec.Labels[LabelAPIKeyWorkspace] = req.Workspace
		}
		if !req.ValidUntil.IsZero() {
			sec.Data[dataValidUntil] = []byte(req.ValidUntil.UTC().Format(time.RFC3339))
		}
		err = c.Create(ctx, sec)
		if apierrors.IsNotFound(err) {
			// First key of an install (`gpuspace apikey create` before the
			// server ever started): make the namespace, try again.
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
			if nsErr := c.Create(ctx, ns); nsErr != nil && !apierrors.IsAlreadyExists(nsErr) {
				return "", KeyInfo{}, fmt.Errorf("create namespace %s: %w", namespace, nsErr)
			}
			err = c.Create(ctx, sec)
		}
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			return "", KeyInfo{}, fmt.Errorf("create API key secret: %w", err)
		}
		info, err := infoOf(sec)
		return key, info, err
	}
	return "", KeyInfo{}, errors.New("create API key: id collisions, giving up")
}

// ListKeys lists the keys in namespace, all of them or (workspace not
// empty) those limited to workspace, ordered by name then id.
func ListKeys(ctx context.Context, r client.Reader, namespace, workspace string) ([]KeyInfo, error) {
	sel := client.MatchingLabels{LabelAPIKey: LabelValueKey}
	if workspace != "" {
		sel[LabelAPIKeyWorkspace] = workspace
	}
	var list corev1.SecretList
	if err := r.List(ctx, &list, client.InNamespace(namespace), sel); err != nil {
		return nil, fmt.Errorf("list API key secrets: %w", err)
	}
	out := make([]KeyInfo, 0, len(list.Items))
	for i := range list.Items {
		info, err := infoOf(&list.Items[i])
		if err != nil {
			continue // a damaged record is not a key; /auth reports it
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b KeyInfo) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// DeleteKey deletes the key named by ref: its id, its name (if no other key
// has it), or the key itself. Every token issued for it stops working.
func DeleteKey(ctx context.Context, c client.Client, namespace, ref string) (KeyInfo, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return KeyInfo{}, ErrKeyNotFound
	}
	if id, _, ok := parseKey(ref); ok {
		ref = id
	}
	var target *corev1.Secret
	var sec corev1.Secret
	var err error = apierrors.NewNotFound(corev1.Resource("secrets"), ref)
	if isKeyID(ref) { // anything else is a name, never part of an object path
		err = c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: SecretPrefix + ref}, &sec)
	}
	switch {
	case err == nil && sec.Labels[LabelAPIKey] == LabelValueKey:
		target = &sec
	case err != nil && !apierrors.IsNotFound(err):
		return KeyInfo{}, fmt.Errorf("get API key secret: %w", err)
	default:
		var list corev1.SecretList
		if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{LabelAPIKey: LabelValueKey}); err != nil {
			return KeyInfo{}, fmt.Errorf("list API key secrets: %w", err)
		}
		for i := range list.Items {
			if string(list.Items[i].Data[dataName]) != ref {
				continue
			}
			if target != nil {
				return KeyInfo{}, ErrKeyAmbiguous
			}
			target = &list.Items[i]
		}
	}
	if target == nil {
		return KeyInfo{}, ErrKeyNotFound
	}
	info, _ := infoOf(target) // a damaged record is deleted all the same
	info.ID = strings.TrimPrefix(target.Name, SecretPrefix)
	err = c.Delete(ctx, target, client.Preconditions{UID: &target.UID})
	if apierrors.IsNotFound(err) {
		return KeyInfo{}, ErrKeyNotFound
	}
	if err != nil {
		return KeyInfo{}, fmt.Errorf("delete API key secret: %w", err)
	}
	return info, nil
}

func newKeyMaterial() (id, secret string, err error) {
	b := make([]byte, 8+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate API key: %w", err)
	}
	return hex.EncodeToString(b[:8]), base64.RawURLEncoding.EncodeToString(b[8:]), nil
}

// parseKey splits "gps_<16 hex>_<43 base64url>" into id and secret.
func parseKey(key string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok || len(rest) != 16+1+43 || rest[16] != '_' {
		return "", "", false
	}
	id, secret = rest[:16], rest[17:]
	if !isKeyID(id) {
		return "", "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// isKeyID reports whether s has the form of a key id: 16 lower-case hex
// digits.
func isKeyID(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// matches compares key with the stored hash in constant time.
func matches(sec *corev1.Secret, key string) bool {
	return subtle.ConstantTimeCompare(sec.Data[dataHash], []byte(hashKey(key))) == 1
}

// infoOf reads a key record, failing with ErrKeyRecordInvalid when it is
// damaged: no hash, an unknown role, an unreadable date, an Editor without
// a workspace.
func infoOf(sec *corev1.Secret) (KeyInfo, error) {
	id, ok := strings.CutPrefix(sec.Name, SecretPrefix)
	if !ok || len(sec.Data[dataHash]) != 64 {
		return KeyInfo{}, fmt.Errorf("%w: secret %s has no key hash", ErrKeyRecordInvalid, sec.Name)
	}
	role, err := ParseRole(string(sec.Data[dataRole]))
	if err != nil {
		return KeyInfo{}, fmt.Errorf("%w: secret %s: %w", ErrKeyRecordInvalid, sec.Name, err)
	}
	info := KeyInfo{
		ID:          id,
		Name:        string(sec.Data[dataName]),
		UserName:    string(sec.Data[dataUserName]),
		Description: string(sec.Data[dataDescription]),
		Role:        role,
		Workspace:   string(sec.Data[dataWorkspace]),
		CreatedAt:   sec.CreationTimestamp.UTC(),
	}
	if role == RoleEditor && info.Workspace == "" {
		return KeyInfo{}, fmt.Errorf("%w: secret %s: Editor key without a workspace", ErrKeyRecordInvalid, sec.Name)
	}
	if role == RoleOwner && info.Workspace != "" {
		return KeyInfo{}, fmt.Errorf("%w: secret %s: Owner key limited to a workspace", ErrKeyRecordInvalid, sec.Name)
	}
	if v := sec.Data[dataValidUntil]; len(v) > 0 {
		t, err := time.Parse(time.RFC3339, string(v))
		if err != nil {
			return KeyInfo{}, fmt.Errorf("%w: secret %s: validUntil: %w", ErrKeyRecordInvalid, sec.Name, err)
		}
		info.ValidUntil = &t
	}
	return info, nil
}
