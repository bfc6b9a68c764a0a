package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/manifests"
)

// Credential applies manifests/worker/credential.yaml to the worker that
// admin reaches (all but its token Secret, which needs the token
// controller) and returns a kubeconfig of the ServiceAccount with a token
// from the TokenRequest API, valid for ttlSeconds: what `gpuspace dev` and
// the tests register workers with. Production uses the manifest and
// hack/worker-kubeconfig.sh.
func Credential(ctx context.Context, admin *rest.Config, ttlSeconds int64) ([]byte, error) {
	c, err := client.New(admin, client.Options{})
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests.WorkerCredential), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("worker credential manifest: %w", err)
		}
		if len(u.Object) == 0 || u.GetKind() == "Secret" {
			continue
		}
		if err := c.Create(ctx, &u); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	tr, err := cs.CoreV1().ServiceAccounts("gpuspace-system").CreateToken(ctx, "gpuspace-hub",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(ttlSeconds)}},
		metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token for gpuspace-system/gpuspace-hub: %w", err)
	}
	ca := admin.CAData
	if len(ca) == 0 && admin.CAFile != "" {
		cfg := rest.CopyConfig(admin)
		if err := rest.LoadTLSFiles(cfg); err != nil {
			return nil, err
		}
		ca = cfg.CAData
	}
	kc := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"worker": {Server: admin.Host, CertificateAuthorityData: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"gpuspace-hub": {Token: tr.Status.Token}},
		Contexts:       map[string]*clientcmdapi.Context{"worker": {Cluster: "worker", AuthInfo: "gpuspace-hub"}},
		CurrentContext: "worker",
	}
	return clientcmd.Write(kc)
}
