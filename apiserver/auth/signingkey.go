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
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/cache"
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

// SecretKeySource follows the signing key Secret through an informer: its
// event handler rebuilds the Signer when the Secret changes, so a rotation
// reaches every replica as fast as its watch does and a request pays only
// an atomic load. Until the informer has delivered the Secret (start-up),
// or after it was deleted, SigningKeys reads it from the apiserver, and
// creates a new one if there is none: deleting the Secret is the way to
// revoke every token at once.
type SecretKeySource struct {
	live      client.Client
	namespace string
	signer    atomic.Pointer[Signer]
}

// NewSecretKeySource returns a KeySource for the signing key Secret in
// namespace. informers must watch that Secret (CacheOptions in the
// apiserver package selects it); live is read while the informer has not
// delivered it, and written if it does not exist.
func NewSecretKeySource(ctx context.Context, informers cache.Informers, live client.Client, namespace string) (*SecretKeySource, error) {
	s := &SecretKeySource{live: live, namespace: namespace}
	inf, err := informers.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return nil, fmt.Errorf("signing key: secret informer: %w", err)
	}
	_, err = inf.AddEventHandler(toolscache.FilteringResourceEventHandler{
		FilterFunc: s.isSigningKey,
		Handler: toolscache.ResourceEventHandlerFuncs{
			AddFunc:    s.observe,
			UpdateFunc: func(_, obj any) { s.observe(obj) },
			DeleteFunc: func(any) { s.signer.Store(nil) },
		},
	})
	if err != nil {
		return nil, fmt.Errorf("signing key: watch secret: %w", err)
	}
	return s, nil
}

func (s *SecretKeySource) isSigningKey(obj any) bool {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	sec, ok := obj.(*corev1.Secret)
	return ok && sec.Namespace == s.namespace && sec.Name == SigningKeySecret
}

// observe takes the Signer of a new version of the Secret; a damaged one
// clears it, so that SigningKeys reports the damage instead of signing with
// a key the Secret no longer holds.
func (s *SecretKeySource) observe(obj any) {
	signer, err := signerOf(obj.(*corev1.Secret))
	if err != nil {
		s.signer.Store(nil)
		return
	}
	s.signer.Store(signer)
}

// SigningKeys implements KeySource.
func (s *SecretKeySource) SigningKeys(ctx context.Context) (*Signer, error) {
	if signer := s.signer.Load(); signer != nil {
		return signer, nil
	}
	name := types.NamespacedName{Namespace: s.namespace, Name: SigningKeySecret}
	var sec corev1.Secret
	err := s.live.Get(ctx, name, &sec)
	if apierrors.IsNotFound(err) {
		if err := EnsureSigningKey(ctx, s.live, s.namespace); err != nil {
			return nil, err
		}
		err = s.live.Get(ctx, name, &sec)
	}
	if err != nil {
		return nil, fmt.Errorf("read signing key secret %s: %w", name, err)
	}
	signer, err := signerOf(&sec)
	if err != nil {
		return nil, err
	}
	// Keep a version the informer delivered meanwhile; later events replace
	// this one anyway.
	if !s.signer.CompareAndSwap(nil, signer) {
		if cur := s.signer.Load(); cur != nil {
			return cur, nil
		}
	}
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
