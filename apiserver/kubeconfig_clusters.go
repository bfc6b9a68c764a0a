package apiserver

import (
	"context"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// tokenFunc asks a cluster for a token of ServiceAccount ns/sa valid for
// ttl seconds.
type tokenFunc func(ctx context.Context, ns, sa string, ttl int64) (*authenticationv1.TokenRequest, error)

// localToken is a token of the cluster the API runs in.
func (s *Server) localToken(ctx context.Context, ns, sa string, ttl int64) (*authenticationv1.TokenRequest, error) {
	return s.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl},
	}, metav1.CreateOptions{})
}

// workerKubeconfig is what a workspace kubeconfig for a registered worker
// cluster holds: its server and CA, and tokens of its ServiceAccounts.
type workerKubeconfig struct {
	server string
	ca     []byte
	token  tokenFunc
}

// workerCluster is the kubeconfig source of cluster when it is a
// registered worker (not the cluster the API runs in).
func (s *Server) workerCluster(cluster string) (workerKubeconfig, bool) {
	reg := s.opts.clusters
	if reg == nil || cluster == reg.Local() {
		return workerKubeconfig{}, false
	}
	c, ok := reg.Client(cluster)
	if !ok {
		return workerKubeconfig{}, false
	}
	server, ca, ok := reg.Endpoint(cluster)
	if !ok {
		return workerKubeconfig{}, false
	}
	return workerKubeconfig{server: server, ca: ca, token: func(ctx context.Context, ns, sa string, ttl int64) (*authenticationv1.TokenRequest, error) {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl}}
		acct := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}
		if err := c.SubResource("token").Create(ctx, acct, tr); err != nil {
			return nil, err
		}
		return tr, nil
	}}, true
}
