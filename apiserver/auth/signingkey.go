package auth

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Data keys of the signing key Secret: the key tokens are signed with, and
// the one it replaced, still accepted so that a rotation signs nobody out.
const (
	dataSigningKey      = "key"
	dataPreviousSigning = "previous"
)

// signingKeyBytes is the length of a generated signing key (HMAC-SHA256).
const signingKeyBytes = 32

// KeySource gives the Signer for the current signing keys. A *Signer is a
// KeySource of fixed keys; SecretKeySource follows the signing key Secret.
type KeySource interface {
	SigningKeys(ctx context.Context) (*Signer, error)
}

// EnsureSigningKey creates the signing key Secret in namespace with a
// random key if it does not exist, and labels an existing one so the API's
// cache sees it. Replicas racing to create it all end up with the one that
// won.
func EnsureSigningKey(ctx context.Context, c client.Client, namespace string) error {
	name := types.NamespacedName{Namespace: namespace, Name: SigningKeySecret}
	for range 3 {
		var sec corev1.Secret
		err := c.Get(ctx, name, &sec)
		if err == nil {
			if _, err := signerOf(&sec); err != nil {
				return err
			}
			if sec.Labels[LabelAPIKey] == LabelValueSigningKey {
				return nil
			}
			// Written by a gpuspace that did not label it.
			patch := client.MergeFrom(sec.DeepCopy())
			metav1.SetMetaDataLabel(&sec.ObjectMeta, LabelAPIKey, LabelValueSigningKey)
			if err := c.Patch(ctx, &sec, patch); err != nil {
				return fmt.Errorf("label signing key secret %s: %w", name, err)
			}
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get signing key secret %s: %w", name, err)
		}
		key, err := newSigningKey()
		if err != nil {
			return err
		}
		sec = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: name.Name, Namespace: namespace,
				Labels: map[string]string{LabelAPIKey: LabelValueSigningKey},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{dataSigningKey: key},
		}
		err = c.Create(ctx, &sec)
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create signing key secret %s: %w", name, err)
		}
	}
	return fmt.Errorf("signing key secret %s: could not create or read it", name)
}

// RotateSigningKey replaces the token signing key in namespace with a new
// random one. Tokens signed with the replaced key stay valid until they
// expire (at most the token lifetime) unless dropPrevious is set: then
// every token issued before the rotation stops working at once, and every
// user must exchange their API key again. Servers pick the new key up
// through their cache without a restart.
func RotateSigningKey(ctx context.Context, c client.Client, namespace string, dropPrevious bool) error {
	name := types.NamespacedName{Namespace: namespace, Name: SigningKeySecret}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var sec corev1.Secret
		if err := c.Get(ctx, name, &sec); err != nil {
			return err
		}
		key, err := newSigningKey()
		if err != nil {
			return err
		}
		if dropPrevious {
			delete(sec.Data, dataPreviousSigning)
		} else {
			sec.Data[dataPreviousSigning] = sec.Data[dataSigningKey]
		}
		sec.Data[dataSigningKey] = key
		metav1.SetMetaDataLabel(&sec.ObjectMeta, LabelAPIKey, LabelValueSigningKey)
		return c.Update(ctx, &sec)
	})
	if apierrors.IsNotFound(err) {
		// Nothing to rotate: a fresh key is as good as a rotated one.
		return EnsureSigningKey(ctx, c, namespace)
	}
	if err != nil {
		return fmt.Errorf("rotate signing key %s: %w", name, err)
	}
	return nil
}

// SecretKeySource reads the signing keys from their Secret on every call,
// through an informer cache, so a rotation reaches every replica as fast as
// its watch does. A Signer is built only when the Secret changed. If the
// Secret is deleted, the next call creates a new key: deleting it is the
// way to revoke every token at once.
type SecretKeySource struct {
	cache     client.Reader
	live      client.Client
	namespace string
	last      atomic.Pointer[sourcedSigner]
}

type sourcedSigner struct {
	resourceVersion string
	signer          *Signer
}

// NewSecretKeySource returns a KeySource for the signing key Secret in
// namespace, read through cache; live is read on a cache miss and writes a
// new Secret if there is none.
func NewSecretKeySource(cache client.Reader, live client.Client, namespace string) *SecretKeySource {
	return &SecretKeySource{cache: cache, live: live, namespace: namespace}
}

// SigningKeys implements KeySource.
func (s *SecretKeySource) SigningKeys(ctx context.Context) (*Signer, error) {
	name := types.NamespacedName{Namespace: s.namespace, Name: SigningKeySecret}
	var sec corev1.Secret
	err := s.cache.Get(ctx, name, &sec)
	if apierrors.IsNotFound(err) {
		err = s.live.Get(ctx, name, &sec)
	}
	if apierrors.IsNotFound(err) {
		if err := EnsureSigningKey(ctx, s.live, s.namespace); err != nil {
			return nil, err
		}
		err = s.live.Get(ctx, name, &sec)
	}
	if err != nil {
		return nil, fmt.Errorf("read signing key secret %s: %w", name, err)
	}
	if last := s.last.Load(); last != nil && last.resourceVersion == sec.ResourceVersion {
		return last.signer, nil
	}
	signer, err := signerOf(&sec)
	if err != nil {
		return nil, err
	}
	s.last.Store(&sourcedSigner{resourceVersion: sec.ResourceVersion, signer: signer})
	return signer, nil
}

// signerOf builds the Signer a signing key Secret describes.
func signerOf(sec *corev1.Secret) (*Signer, error) {
	var previous [][]byte
	if p, ok := sec.Data[dataPreviousSigning]; ok {
		previous = append(previous, p)
	}
	s, err := NewSigner(sec.Data[dataSigningKey], previous...)
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	return s, nil
}

func newSigningKey() ([]byte, error) {
	key := make([]byte, signingKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return key, nil
}
