package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/apiserver/envelope"
	"github.com/gpuspace/gpuspace/apiserver/schema"
)

// KubeconfigRequest names the workspace (and cluster) of a kubeconfig.
type KubeconfigRequest struct {
	_             struct{}                `additionalProperties:"true"`
	WorkspaceName schema.OptionalDNSLabel `json:"workspaceName,omitempty" doc:"Workspace whose namespaces the kubeconfig reaches"`
	ClusterName   string                  `json:"clusterName,omitempty" maxLength:"63" doc:"Cluster; may be left out when the workspace is on one cluster"`
}

// Kubeconfig is the data of the kube-config operations.
type Kubeconfig struct {
	KubeConfig string `json:"kubeConfig" doc:"A kubeconfig (YAML) with one context per namespace of the workspace on the cluster"`
}

type kubeconfigGetInput struct {
	WorkspaceName schema.OptionalDNSLabel `query:"workspaceName" doc:"Workspace (or send it in a JSON body, as EGS clients do)"`
	ClusterName   string                  `query:"clusterName" maxLength:"63" doc:"Cluster (or in the body)"`
	Body          *KubeconfigRequest
}

type kubeconfigPostInput struct {
	Body KubeconfigRequest
}

func (s *Server) registerKubeconfig(tag string) {
	const desc = "Returns a kubeconfig for the workspace's ServiceAccount, with a short-lived token, the cluster's CA and server URL, and one context per workspace namespace. It can manage workloads in those namespaces and nothing else. Asked right after the workspace was created, it waits (a few seconds at most) until the workspace's namespaces and ServiceAccounts exist; 409 WORKSPACE_NOT_READY, naming what is missing, only if they do not come in time."
	register(s, opSpec{
		id: "createWorkspaceKubeconfig", method: http.MethodPost, path: "/api/v1/slice-workspace/kube-config", tag: tag,
		summary:     "Get a workspace kubeconfig",
		description: desc,
		roles:       rolesEditors, scope: writesWorkspace(inBody("workspaceName")), mcpName: "workspaces_kubeconfig",
		guidance: "The answer holds a credential (a ServiceAccount token): hand it to the user or write it to a file, do not echo it into chat logs.",
		errors:   []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *kubeconfigPostInput) (*envelope.Output[Kubeconfig], error) {
		return s.kubeconfig(ctx, string(in.Body.WorkspaceName), in.Body.ClusterName)
	})
	register(s, opSpec{
		id: "getWorkspaceKubeconfig", method: http.MethodGet, path: "/api/v1/slice-workspace/kube-config", tag: tag,
		summary:     "Get a workspace kubeconfig (GET form)",
		description: desc + " Parameters come from the query string or, as EGS clients send them, a JSON body.",
		roles:       rolesEditors, scope: writesWorkspace(inQuery("workspaceName"), inBody("workspaceName")), aliasOf: "createWorkspaceKubeconfig",
		errors: []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *kubeconfigGetInput) (*envelope.Output[Kubeconfig], error) {
		ws, cluster := in.WorkspaceName, in.ClusterName
		if in.Body != nil {
			ws = orDefault(ws, in.Body.WorkspaceName)
			cluster = orDefault(cluster, in.Body.ClusterName)
		}
		return s.kubeconfig(ctx, string(ws), cluster)
	})
}

func upstream(msg string) *envelope.Error {
	return envelope.New(http.StatusBadRequest, envelope.KeyUpstreamRequest, msg,
		envelope.WithStatus(envelope.KeyUpstreamRequest), envelope.WithTitle(msg))
}

// DefaultKubeconfigReadyWait is how long kube-config waits, at most, for a
// workspace created a moment ago to become usable (its ServiceAccount in
// each namespace) before it answers 409 WORKSPACE_NOT_READY.
const DefaultKubeconfigReadyWait = 15 * time.Second

// kubeconfigPoll is how often a waiting kube-config looks again: at the
// cache for the workspace's status, at the apiserver for its tokens.
const kubeconfigPoll = 100 * time.Millisecond

// kubeconfig answers the kube-config operations. EGS clients (the Postman
// collection, the Python SDK's examples) ask for it right after creating
// the workspace, before the workspace controller has made its namespaces
// and ServiceAccounts: then it waits for them, bounded, and only answers
// 409 WORKSPACE_NOT_READY, naming why, when they do not come in time.
func (s *Server) kubeconfig(ctx context.Context, wsName, cluster string) (*envelope.Output[Kubeconfig], error) {
	if wsName == "" {
		return nil, upstream("Workspace name is required: send workspaceName in the body or as a query parameter")
	}
	wait := s.opts.kubeconfigReadyWait
	deadline := time.Now().Add(wait)
	for {
		ws, err := s.workspace(ctx, wsName)
		if err != nil {
			return nil, err
		}
		out, notReady, err := s.workspaceKubeconfig(ctx, ws, cluster)
		if notReady == "" {
			return out, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, workspaceNotReady(ws, notReady, wait)
		}
		select {
		case <-ctx.Done():
			return nil, workspaceNotReady(ws, notReady, wait)
		case <-time.After(min(kubeconfigPoll, left)):
		}
	}
}

// workspaceNotReady is the 409 of a workspace still not usable after the
// wait: what is missing, and the controller's own account of it.
func workspaceNotReady(ws *v1alpha1.Workspace, missing string, waited time.Duration) *envelope.Error {
	msg := fmt.Sprintf("workspace %q is not ready after %s: %s", ws.Name, waited.Round(time.Millisecond), missing)
	switch c := meta.FindStatusCondition(ws.Status.Conditions, v1alpha1.WorkspaceReady); {
	case c == nil:
		msg += "; the workspace controller has not reported on it yet (is gpuspace's controller running?)"
	case c.Status != metav1.ConditionTrue && c.Message != "":
		msg += "; the workspace controller reports: " + c.Message
	}
	msg += "; retry in a few seconds"
	return envelope.New(http.StatusConflict, envelope.KeyWorkspaceNotReady, msg)
}

// workspaceKubeconfig builds the kubeconfig of ws on cluster. notReady,
// when not empty, says what the workspace still lacks (worth waiting for);
// err is an answer to give at once.
func (s *Server) workspaceKubeconfig(ctx context.Context, ws *v1alpha1.Workspace, cluster string) (out *envelope.Output[Kubeconfig], notReady string, err error) {
	if cluster == "" {
		if len(ws.Spec.Clusters) != 1 {
			return nil, "", upstream("Worker name is required as a query parameter")
		}
		cluster = ws.Spec.Clusters[0]
	}
	if !slices.Contains(ws.Spec.Clusters, cluster) {
		return nil, "", envelope.NotFound("workspace %q is not on cluster %q; its clusters: %s", ws.Name, cluster, strings.Join(ws.Spec.Clusters, ", "))
	}
	var namespaces []string
	for _, n := range namespacesOf(ws) {
		if slices.Contains(n.Clusters, cluster) {
			namespaces = append(namespaces, n.Namespace)
		}
	}
	if len(namespaces) == 0 {
		return nil, "", envelope.NotFound("workspace %q has no namespace on cluster %q", ws.Name, cluster)
	}
	if ws.DeletionTimestamp != nil {
		return nil, "", envelope.New(http.StatusConflict, envelope.KeyWorkspaceNotReady, fmt.Sprintf("workspace %q is being deleted", ws.Name))
	}
	sa := ws.Status.ServiceAccount
	if sa == "" {
		return nil, "no ServiceAccount yet", nil
	}
	server, ca, token := s.cfg.KubeconfigServer, s.cfg.KubeconfigCAData, tokenFunc(s.localToken)
	if wc, ok := s.workerCluster(cluster); ok {
		// A registered worker: its server and CA, tokens of its own.
		server, ca, token = wc.server, wc.ca, wc.token
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	ttl := int64(s.cfg.KubeconfigTokenTTL.Seconds())
	for _, ns := range namespaces {
		// One token per namespace: the ServiceAccount of each namespace is
		// bound there, and only there.
		tr, err := token(ctx, ns, sa, ttl)
		if apierrors.IsNotFound(err) {
			return nil, fmt.Sprintf("no ServiceAccount %s in namespace %s", sa, ns), nil
		}
		if err != nil {
			return nil, "", s.kubeErr(err, fmt.Sprintf("token for ServiceAccount %s/%s", ns, sa))
		}
		user := ws.Name + "/" + ns
		ctxName := user + "@" + cluster
		cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
		cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: user, Namespace: ns}
		if cfg.CurrentContext == "" {
			cfg.CurrentContext = ctxName
		}
	}
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, "", s.kubeErr(fmt.Errorf("write kubeconfig: %w", err), "kubeconfig")
	}
	return envelope.OK(Kubeconfig{KubeConfig: string(b)}), "", nil
}
