// Package draclaims reads the specs of a pod's DRA resource claims for
// domain.PodClaimSpecs, from informer listers (the scheduler plugin, the
// node simulator) or from a controller-runtime reader (the GPR
// controller's eviction).
package draclaims

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	resourcelisters "k8s.io/client-go/listers/resource/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/internal/domain"
)

// FromListers returns the specs of pod's resource claims from the listers.
func FromListers(claims resourcelisters.ResourceClaimLister, templates resourcelisters.ResourceClaimTemplateLister, pod *corev1.Pod) ([]*resourcev1.ResourceClaimSpec, error) {
	if len(pod.Spec.ResourceClaims) == 0 {
		return nil, nil
	}
	return domain.PodClaimSpecs(pod,
		func(name string) (*resourcev1.ResourceClaimSpec, error) {
			c, err := claims.ResourceClaims(pod.Namespace).Get(name)
			if err != nil {
				return nil, ignoreNotFound(err)
			}
			return &c.Spec, nil
		},
		func(name string) (*resourcev1.ResourceClaimSpec, error) {
			t, err := templates.ResourceClaimTemplates(pod.Namespace).Get(name)
			if err != nil {
				return nil, ignoreNotFound(err)
			}
			return &t.Spec.Spec, nil
		})
}

// FromReader returns the specs of pod's resource claims read with r.
func FromReader(ctx context.Context, r client.Reader, pod *corev1.Pod) ([]*resourcev1.ResourceClaimSpec, error) {
	if len(pod.Spec.ResourceClaims) == 0 {
		return nil, nil
	}
	return domain.PodClaimSpecs(pod,
		func(name string) (*resourcev1.ResourceClaimSpec, error) {
			var c resourcev1.ResourceClaim
			if err := r.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: name}, &c); err != nil {
				return nil, ignoreNotFound(err)
			}
			return &c.Spec, nil
		},
		func(name string) (*resourcev1.ResourceClaimSpec, error) {
			var t resourcev1.ResourceClaimTemplate
			if err := r.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: name}, &t); err != nil {
				return nil, ignoreNotFound(err)
			}
			return &t.Spec.Spec, nil
		})
}

// ignoreNotFound is err, or nil for a NotFound: an object that is not
// there is a claim that asks for nothing yet.
func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
