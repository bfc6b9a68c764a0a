package controlplane

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/gpuspace/gpuspace/manifests"
)

// InstallCRDs creates or updates the gpuspace CRDs embedded in manifests
// and waits until each is Established.
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("apiextensions client: %w", err)
	}
	files, err := fs.Glob(manifests.CRDs, "crds/gpuspace.io_*.yaml")
	if err != nil {
		return err
	}
	crdClient := cs.ApiextensionsV1().CustomResourceDefinitions()
	for _, f := range files {
		b, err := manifests.CRDs.ReadFile(f)
		if err != nil {
			return err
		}
		var want apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &want); err != nil {
			return fmt.Errorf("parse %s: %w", f, err)
		}
		got, err := crdClient.Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err := crdClient.Create(ctx, &want, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create CRD %s: %w", want.Name, err)
			}
		case err != nil:
			return fmt.Errorf("get CRD %s: %w", want.Name, err)
		default:
			want.ResourceVersion = got.ResourceVersion
			if _, err := crdClient.Update(ctx, &want, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update CRD %s: %w", want.Name, err)
			}
		}
		err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			crd, err := crdClient.Get(ctx, want.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", want.Name, err)
		}
	}
	return nil
}
