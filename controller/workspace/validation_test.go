package workspace_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
	"github.com/gpuspace/gpuspace/controller"
	"github.com/gpuspace/gpuspace/internal/admission"
)

// startControllers runs gpuspace's controllers against env until the test
// ends.
func startControllers(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := rest.CopyConfig(env.Config)
	mgr, err := controller.NewManager(cfg, controller.ManagerOptions{})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	if err := controller.Setup(mgr, controller.Options{SkipNameValidation: true}); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return ctx
}

// eventually polls f until it returns nil, failing the test with its last
// error after 30 seconds.
func eventually(t *testing.T, ctx context.Context, f func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		last = f()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%v: %v", err, last)
	}
}

func newWorkspace(name string, namespaces ...string) *v1alpha1.Workspace {
	ws := &v1alpha1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.WorkspaceSpec{Username: "user-" + name, Clusters: []string{v1alpha1.DefaultCluster}},
	}
	for _, ns := range namespaces {
		ws.Spec.Namespaces = append(ws.Spec.Namespaces, v1alpha1.WorkspaceNamespace{Namespace: ns})
	}
	return ws
}

// TestKubectlWorkspaceWithAnothersNamespaceIsRefused: a Workspace created
// with kubectl (client.Create, no REST check) that lists a namespace of an
// older workspace is refused as REST refuses it: Ready False with reason
// Refused naming the owner, a Warning Event, and nothing created for it —
// not even its own namespace.
func TestKubectlWorkspaceWithAnothersNamespaceIsRefused(t *testing.T) {
	ctx := startControllers(t)
	a := newWorkspace("val-a", "val-shared")
	if err := env.Client.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, func() error {
		var ws v1alpha1.Workspace
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(a), &ws); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(ws.Status.Conditions, v1alpha1.WorkspaceReady) {
			return fmt.Errorf("workspace %s not Ready", a.Name)
		}
		return nil
	})
	b := newWorkspace("val-b", "val-b-own", "val-shared")
	if err := env.Client.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	want := admission.NamespaceTakenMessage("val-shared", a.Name)
	eventually(t, ctx, func() error {
		var ws v1alpha1.Workspace
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(b), &ws); err != nil {
			return err
		}
		c := meta.FindStatusCondition(ws.Status.Conditions, v1alpha1.WorkspaceReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != admission.ReasonWorkspaceRefused || c.Message != want {
			return fmt.Errorf("Ready = %+v, want False, %s: %s", c, admission.ReasonWorkspaceRefused, want)
		}
		return nil
	})
	eventually(t, ctx, func() error {
		var evs eventsv1.EventList
		if err := env.Client.List(ctx, &evs); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == b.Name && e.Reason == admission.ReasonWorkspaceRefused && e.Type == corev1.EventTypeWarning && e.Note == want {
				return nil
			}
		}
		return fmt.Errorf("no Refused event for workspace %s", b.Name)
	})
	// Never acted on: its own namespace is not created.
	var ns corev1.Namespace
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "val-b-own"}, &ns); !apierrors.IsNotFound(err) {
		t.Errorf("namespace val-b-own of a refused workspace: err %v, want NotFound", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "val-shared"}, &ns); err != nil {
		t.Fatal(err)
	}
	if ns.Labels[v1alpha1.LabelWorkspace] != a.Name {
		t.Errorf("namespace label %q, want %q", ns.Labels[v1alpha1.LabelWorkspace], a.Name)
	}
}
