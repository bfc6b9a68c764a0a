package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/internal/clusters"
	"github.com/gpuspace/gpuspace/internal/domain"
)

// Right is one access a worker credential needs.
type Right struct {
	Group, Resource, Subresource, Verb, Name string
}

func (r Right) String() string {
	res := r.Resource
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	if r.Group != "" {
		res += "." + r.Group
	}
	s := r.Verb + " " + res
	if r.Name != "" {
		s += " " + r.Name
	}
	return s
}

// WorkerRights are the rights gpuspace needs in a worker cluster, all
// cluster-wide: bind nodes (labels and a taint), evict a workspace's pods
// from the nodes it leaves (and read pods' DRA claims, to tell GPU pods), give workspaces their namespaces,
// ServiceAccount, RoleBindings and kubeconfig tokens, and keep the
// projections of the hub's GPRs there that the worker's scheduler reads
// (controller/projection: watched from a cache, so no get).
// manifests/worker/credential.yaml grants exactly these.
var WorkerRights = func() []Right {
	var out []Right
	add := func(group, resource, sub string, verbs ...string) {
		for _, v := range verbs {
			out = append(out, Right{Group: group, Resource: resource, Subresource: sub, Verb: v})
		}
	}
	add("", "nodes", "", "get", "list", "watch", "patch")
	add("", "pods", "", "list", "delete")
	// Whether a pod's DRA claims ask for GPUs (domain.PodUsesGPUs).
	add("resource.k8s.io", "resourceclaims", "", "get")
	add("resource.k8s.io", "resourceclaimtemplates", "", "get")
	add("", "namespaces", "", "get", "list", "create", "patch")
	add("", "serviceaccounts", "", "get", "create", "delete")
	add("", "serviceaccounts", "token", "create")
	add("rbac.authorization.k8s.io", "rolebindings", "", "get", "create", "delete")
	add(v1alpha1.GroupName, "gpuprovisionrequests", "", "list", "watch", "create", "update", "delete")
	add(v1alpha1.GroupName, "gpuprovisionrequests", "status", "update")
	out = append(out, Right{Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Verb: "bind", Name: "gpuspace-workspace-user"})
	return out
}()

// CheckAccess reports whether the credential of cfg reaches its cluster
// and holds every WorkerRights there (a SelfSubjectAccessReview each). The
// error names what failed. It returns the server's version.
func CheckAccess(ctx context.Context, kubeconfig []byte, kubeContext string) (string, error) {
	cfg, err := clusters.RESTConfig(kubeconfig, kubeContext)
	if err != nil {
		return "", err
	}
	cfg.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return "", fmt.Errorf("cannot reach the cluster's API server %s: %w", cfg.Host, err)
	}
	var missing []string
	for _, r := range WorkerRights {
		ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Group: r.Group, Resource: r.Resource, Subresource: r.Subresource, Verb: r.Verb, Name: r.Name,
			},
		}}
		res, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, ssar, metav1.CreateOptions{})
		if err != nil {
			return "", fmt.Errorf("check right %q on %s: %w", r, cfg.Host, err)
		}
		if !res.Status.Allowed {
			missing = append(missing, r.String())
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("the credential lacks rights gpuspace needs in the cluster (%s): %s; manifests/worker/credential.yaml grants them",
			cfg.Host, strings.Join(missing, ", "))
	}
	return v.GitVersion, nil
}

// checkNodeNames refuses a worker with a node of the same name as one of
// the hub's own cluster: a GPR's status names its nodes by name, so node
// names must be unique across the clusters of one hub.
func checkNodeNames(ctx context.Context, hub client.Reader, kubeconfig []byte, kubeContext string) error {
	cfg, err := clusters.RESTConfig(kubeconfig, kubeContext)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	theirs, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list the cluster's nodes: %w", err)
	}
	var ours corev1.NodeList
	if err := hub.List(ctx, &ours); err != nil {
		return fmt.Errorf("list the hub's nodes: %w", err)
	}
	names := make(map[string]bool, len(ours.Items))
	for _, n := range ours.Items {
		names[n.Name] = true
	}
	var dup []string
	for _, n := range theirs.Items {
		if names[n.Name] {
			dup = append(dup, n.Name)
		}
	}
	if len(dup) > 0 {
		slices.Sort(dup)
		return fmt.Errorf("nodes %s are in the hub's cluster too; node names must be unique across the clusters of one gpuspace", strings.Join(dup, ", "))
	}
	return nil
}

// SecretName is the name of a Cluster's kubeconfig Secret as Register
// creates it.
func SecretName(cluster string) string { return "cluster-" + cluster + "-kubeconfig" }

// RegisterOptions are what Register needs besides the hub.
type RegisterOptions struct {
	// Name of the cluster, as workspaces and GPRs name it.
	Name string
	// Kubeconfig and Context: the worker's credential.
	Kubeconfig []byte
	Context    string
	// Local is the hub's own cluster name (--cluster-name): it cannot be
	// registered.
	Local string
	// Namespace is gpuspace's namespace, where the Secret goes.
	Namespace string
	// SkipAccessCheck leaves out CheckAccess (tests of the check itself).
	SkipAccessCheck bool
}

// Register checks the worker's credential (CheckAccess) and creates its
// Secret and Cluster on the hub. On any failure it creates nothing.
func Register(ctx context.Context, hub client.Client, o RegisterOptions) (*v1alpha1.Cluster, error) {
	if errs := validation.IsDNS1123Label(o.Name); len(errs) > 0 {
		return nil, fmt.Errorf("cluster name %q: %s", o.Name, strings.Join(errs, "; "))
	}
	if o.Name == o.Local || (o.Local == "" && o.Name == v1alpha1.DefaultCluster) {
		return nil, fmt.Errorf("cluster %s is the cluster gpuspace runs in (--cluster-name); it needs no registration", o.Name)
	}
	kc, err := portable(o.Kubeconfig, o.Context)
	if err != nil {
		return nil, err
	}
	var existing v1alpha1.Cluster
	switch err := hub.Get(ctx, client.ObjectKey{Name: o.Name}, &existing); {
	case err == nil:
		return nil, fmt.Errorf("cluster %s is registered already (unregister it first)", o.Name)
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("read cluster %s: %w", o.Name, err)
	}
	if !o.SkipAccessCheck {
		if _, err := CheckAccess(ctx, kc, o.Context); err != nil {
			return nil, err
		}
		if err := checkNodeNames(ctx, hub, kc, o.Context); err != nil {
			return nil, err
		}
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: SecretName(o.Name), Namespace: o.Namespace,
			Labels: map[string]string{v1alpha1.LabelClusterSecret: o.Name},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{v1alpha1.KubeconfigKey: kc},
	}
	if err := hub.Create(ctx, sec); err != nil {
		return nil, fmt.Errorf("create Secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	c := &v1alpha1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: o.Name},
		Spec:       v1alpha1.ClusterSpec{KubeconfigSecret: sec.Name, Context: o.Context},
	}
	if err := hub.Create(ctx, c); err != nil {
		derr := hub.Delete(context.WithoutCancel(ctx), sec)
		return nil, errors.Join(fmt.Errorf("create Cluster %s: %w", o.Name, err), client.IgnoreNotFound(derr))
	}
	return c, nil
}

// portable is the kubeconfig reduced to the context used (or the current
// one), with file references inlined, so that it works on the hub.
func portable(kubeconfig []byte, kubeContext string) ([]byte, error) {
	raw, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("parse kubeconfig: %w", err)
	}
	if kubeContext != "" {
		if _, ok := raw.Contexts[kubeContext]; !ok {
			return nil, fmt.Errorf("kubeconfig has no context %q", kubeContext)
		}
		raw.CurrentContext = kubeContext
	}
	if err := clientcmdapi.FlattenConfig(raw); err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if err := clientcmdapi.MinifyConfig(raw); err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return clientcmd.Write(*raw)
}

// ProvisionedOn are the provisioned GPRs of cluster name.
func ProvisionedOn(ctx context.Context, hub client.Reader, name string) ([]string, error) {
	var list v1alpha1.GPUProvisionRequestList
	if err := hub.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list GPRs: %w", err)
	}
	var out []string
	for i := range list.Items {
		g := &list.Items[i]
		if g.Spec.ClusterName == name && domain.IsProvisioned(g) {
			out = append(out, g.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Unregister deletes a Cluster and its Secret. It refuses while GPRs are
// provisioned there, unless force.
func Unregister(ctx context.Context, hub client.Client, namespace, name string, force bool) error {
	var c v1alpha1.Cluster
	if err := hub.Get(ctx, client.ObjectKey{Name: name}, &c); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("cluster %s is not registered", name)
		}
		return err
	}
	if !force {
		gprs, err := ProvisionedOn(ctx, hub, name)
		if err != nil {
			return err
		}
		if len(gprs) > 0 {
			return fmt.Errorf("cluster %s has provisioned GPRs (%s); release them first, or unregister with --force", name, strings.Join(gprs, ", "))
		}
	}
	if err := hub.Delete(ctx, &c); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete Cluster %s: %w", name, err)
	}
	if c.Spec.KubeconfigSecret != "" {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: c.Spec.KubeconfigSecret, Namespace: namespace}}
		if err := hub.Delete(ctx, sec); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete Secret %s/%s: %w", namespace, sec.Name, err)
		}
	}
	return nil
}
