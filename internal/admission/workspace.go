package admission

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// ReasonWorkspaceRefused is the reason of the Ready condition of a
// Workspace the workspace controller refused (kubectl-created, failing
// ValidateWorkspace or NamespaceTaken): it is never acted on.
const ReasonWorkspaceRefused = "Refused"

// ReservedWorkspaceNames collide with fixed paths under /slice-workspace/.
var ReservedWorkspaceNames = []string{"list", "kube-config"}

// Paths of the Workspace fields the checks name, as the CRD spells them.
var (
	wsNamePath      = field.NewPath("metadata", "name")
	wsNamespacePath = field.NewPath("spec", "namespaces")
	wsClusterPath   = field.NewPath("spec", "clusters")
	wsMaxPath       = field.NewPath("spec", "maxClusters")
)

// WorkspaceRules is what ValidateWorkspace checks a Workspace against
// beyond the object itself.
type WorkspaceRules struct {
	// SystemNamespace is gpuspace's own namespace: it cannot belong to a
	// workspace (nor can kube-*).
	SystemNamespace string
	// KnownClusters are the clusters a workspace may name; nil skips the
	// check (the controller: an unknown cluster is reported as a problem
	// by the controller that cannot reach it).
	KnownClusters []string
}

// ValidateWorkspace checks what the CRD schema cannot: the name, namespace
// names, namespaces listed twice, system namespaces, known clusters and
// maxClusters. Every problem is returned, each naming its field. REST and
// MCP refuse before create with it; the workspace controller refuses a
// kubectl-created Workspace with it.
func ValidateWorkspace(ws *v1alpha1.Workspace, rules WorkspaceRules) field.ErrorList {
	var errs field.ErrorList
	for _, e := range validation.IsDNS1123Label(ws.Name) {
		errs = append(errs, field.Invalid(wsNamePath, ws.Name, e))
	}
	if slices.Contains(ReservedWorkspaceNames, ws.Name) {
		errs = append(errs, field.Invalid(wsNamePath, ws.Name, "reserved (it is a path under /slice-workspace/)"))
	}
	seen := map[string]bool{}
	for i, n := range ws.Spec.Namespaces {
		p, ns := wsNamespacePath.Index(i).Child("namespace"), n.Namespace
		if bad := validation.IsDNS1123Label(ns); len(bad) > 0 {
			errs = append(errs, field.Invalid(p, ns, strings.Join(bad, "; ")))
			continue
		}
		if seen[ns] {
			errs = append(errs, field.Duplicate(p, ns))
		}
		seen[ns] = true
		if strings.HasPrefix(ns, "kube-") || ns == rules.SystemNamespace {
			errs = append(errs, field.Forbidden(p, fmt.Sprintf("namespace %q is a system namespace and cannot belong to a workspace", ns)))
		}
	}
	cseen := map[string]bool{}
	for i, c := range ws.Spec.Clusters {
		p := wsClusterPath.Index(i)
		switch {
		case cseen[c]:
			errs = append(errs, field.Duplicate(p, c))
		case rules.KnownClusters != nil && !slices.Contains(rules.KnownClusters, c):
			errs = append(errs, field.NotSupported(p, c, rules.KnownClusters))
		}
		cseen[c] = true
	}
	if m := ws.Spec.MaxClusters; m > 0 && int(m) < len(ws.Spec.Clusters) {
		errs = append(errs, field.Invalid(wsMaxPath, m, fmt.Sprintf("fewer than the %d clusters listed", len(ws.Spec.Clusters))))
	}
	return errs
}

// NamespaceTaken reports a namespace of ws that another workspace of
// others already lists, and that workspace: a namespace belongs to one
// workspace, or its ServiceAccount and node binding would be shared. ws
// itself in others is skipped. REST passes every workspace (the new one is
// the newest); the controller passes those that precede ws (Precedes), so
// that of two kubectl-created workspaces the older keeps the namespace.
func NamespaceTaken(ws *v1alpha1.Workspace, others []v1alpha1.Workspace) (namespace, owner string, taken bool) {
	for i := range others {
		o := &others[i]
		if o.Name == ws.Name {
			continue
		}
		for _, on := range o.Spec.Namespaces {
			if slices.ContainsFunc(ws.Spec.Namespaces, func(n v1alpha1.WorkspaceNamespace) bool { return n.Namespace == on.Namespace }) {
				return on.Namespace, o.Name, true
			}
		}
	}
	return "", "", false
}

// NamespaceTakenMessage says why a workspace is refused for a namespace
// another owns (the words the controller has always used for it).
func NamespaceTakenMessage(namespace, owner string) string {
	return fmt.Sprintf("namespace %s belongs to workspace %s", namespace, owner)
}

// Precedes reports whether workspace a came before b: created earlier,
// then by name. Of two workspaces that list one namespace, the one that
// precedes owns it.
func Precedes(a, b *v1alpha1.Workspace) bool {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c < 0
	}
	return a.Name < b.Name
}
