package faultsuite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/gpuspace/gpuspace/api/v1alpha1"
)

// admissionManifest is the ValidatingAdmissionPolicy every installation
// runs (design: exclusive binding, third place): it refuses a pod created
// with spec.nodeName onto a node bound to another workspace. Without it a
// pod placed in the moment after the controller evicted a node that changed
// hands would stay until the node moves on again: the controller checks a
// node's pods when it changes hands, not on every pod event.
const admissionManifest = "manifests/admission/workspace-node-binding.yaml"

// installAdmissionPolicy creates the objects of admissionManifest and waits
// until the apiserver enforces them (it loads policies and their params
// asynchronously), probing with a dry-run pod onto node, bound for the
// probe to a workspace other than the probe pod's namespace's.
func (s *system) installAdmissionPolicy(ctx context.Context, node string) error {
	_, here, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "..", admissionManifest))
	if err != nil {
		return err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return err
		}
		switch o := obj.(type) {
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			_, err = s.kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, o, metav1.CreateOptions{})
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			_, err = s.kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, o, metav1.CreateOptions{})
		default:
			err = fmt.Errorf("unexpected %T in %s", obj, admissionManifest)
		}
		if err != nil {
			return err
		}
	}
	return s.waitAdmissionEnforced(ctx, node)
}

// waitAdmissionEnforced labels node as bound to a probe workspace, waits
// until a dry-run pod of another namespace onto it is refused, and takes
// the label off again.
func (s *system) waitAdmissionEnforced(ctx context.Context, node string) error {
	label := func(v string) error {
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, v1alpha1.LabelWorkspace, v)
		_, err := s.kube.CoreV1().Nodes().Patch(ctx, node, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{})
		return err
	}
	if err := label(`"admission-probe"`); err != nil {
		return err
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "admission-probe", Namespace: metav1.NamespaceDefault},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "example.com/probe:1"}}},
	}
	for {
		_, err := s.kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "is bound to workspace") {
			return label("null")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("admission policy not enforced: %w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
