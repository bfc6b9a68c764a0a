package v1

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestDecodeWorkspaceBindingArgs(t *testing.T) {
	yes, no := true, false
	tm := metav1.TypeMeta{APIVersion: "kubescheduler.config.k8s.io/v1", Kind: "WorkspaceBindingArgs"}
	defaults := &WorkspaceBindingArgs{
		TypeMeta:           tm,
		ExemptNamespaces:   []string{"kube-system", "kube-public", "kube-node-lease", "gpuspace-system"},
		GPUResourceNames:   []string{"nvidia.com/gpu", "gpuspace.io/gpu-memory"},
		GPUDeviceClasses:   []string{"gpu.nvidia.com", "mig.nvidia.com"},
		UpdatePodCondition: &yes,
	}
	tests := []struct {
		name    string
		in      runtime.Object
		want    *WorkspaceBindingArgs
		wantErr string
	}{
		{name: "nil: defaults", in: nil, want: defaults},
		{name: "empty raw: defaults", in: &runtime.Unknown{}, want: defaults},
		{name: "raw JSON", in: &runtime.Unknown{Raw: []byte(`{"apiVersion":"kubescheduler.config.k8s.io/v1","kind":"WorkspaceBindingArgs","exemptNamespaces":["infra"],"gpuResourceNames":["amd.com/gpu"],"updatePodCondition":false}`)},
			want: &WorkspaceBindingArgs{TypeMeta: tm, ExemptNamespaces: []string{"infra"}, GPUResourceNames: []string{"amd.com/gpu"}, GPUDeviceClasses: defaults.GPUDeviceClasses, UpdatePodCondition: &no}},
		{name: "explicit empty exempt list is kept", in: &runtime.Unknown{Raw: []byte(`{"exemptNamespaces":[]}`)},
			want: &WorkspaceBindingArgs{TypeMeta: tm, ExemptNamespaces: []string{}, GPUResourceNames: defaults.GPUResourceNames, GPUDeviceClasses: defaults.GPUDeviceClasses, UpdatePodCondition: &yes}},
		{name: "device classes, and an explicit empty list kept", in: &runtime.Unknown{Raw: []byte(`{"gpuDeviceClasses":[]}`)},
			want: &WorkspaceBindingArgs{TypeMeta: tm, ExemptNamespaces: defaults.ExemptNamespaces, GPUResourceNames: defaults.GPUResourceNames, GPUDeviceClasses: []string{}, UpdatePodCondition: &yes}},
		{name: "typed", in: &WorkspaceBindingArgs{GPUResourceNames: []string{"x.io/gpu"}, GPUDeviceClasses: []string{"gpu.amd.com"}},
			want: &WorkspaceBindingArgs{TypeMeta: tm, ExemptNamespaces: defaults.ExemptNamespaces, GPUResourceNames: []string{"x.io/gpu"}, GPUDeviceClasses: []string{"gpu.amd.com"}, UpdatePodCondition: &yes}},
		{name: "unknown field", in: &runtime.Unknown{Raw: []byte(`{"exemptNamespace":["x"]}`)}, wantErr: `unknown field "exemptNamespace"`},
		{name: "bad namespace", in: &WorkspaceBindingArgs{ExemptNamespaces: []string{"Not_A_Namespace"}}, wantErr: "args.exemptNamespaces[0]: Invalid value"},
		{name: "duplicate resource", in: &WorkspaceBindingArgs{GPUResourceNames: []string{"a.io/gpu", "a.io/gpu"}}, wantErr: "args.gpuResourceNames[1]: Duplicate value"},
		{name: "bad resource", in: &WorkspaceBindingArgs{GPUResourceNames: []string{"a b"}}, wantErr: "args.gpuResourceNames[0]: Invalid value"},
		{name: "bad device class", in: &WorkspaceBindingArgs{GPUDeviceClasses: []string{"GPU class"}}, wantErr: "args.gpuDeviceClasses[0]: Invalid value"},
		{name: "duplicate device class", in: &WorkspaceBindingArgs{GPUDeviceClasses: []string{"gpu.nvidia.com", "gpu.nvidia.com"}}, wantErr: "args.gpuDeviceClasses[1]: Duplicate value"},
		{name: "wrong type", in: &GPRPriorityArgs{}, wantErr: "want *v1.WorkspaceBindingArgs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeWorkspaceBindingArgs(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeWorkspaceBindingArgsDoesNotWriteIntoItsInput(t *testing.T) {
	in := &WorkspaceBindingArgs{}
	if _, err := DecodeWorkspaceBindingArgs(in); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&WorkspaceBindingArgs{}, in); diff != "" {
		t.Errorf("input changed (-want +got):\n%s", diff)
	}
}

func TestDecodeGPRPriorityArgs(t *testing.T) {
	tm := metav1.TypeMeta{APIVersion: "kubescheduler.config.k8s.io/v1", Kind: "GPRPriorityArgs"}
	tests := []struct {
		name    string
		in      runtime.Object
		want    *GPRPriorityArgs
		wantErr string
	}{
		{name: "defaults", want: &GPRPriorityArgs{TypeMeta: tm, ExemptNamespaces: DefaultExemptNamespaces}},
		{name: "raw", in: &runtime.Unknown{Raw: []byte(`exemptNamespaces: [infra]`)}, want: &GPRPriorityArgs{TypeMeta: tm, ExemptNamespaces: []string{"infra"}}},
		{name: "bad", in: &GPRPriorityArgs{ExemptNamespaces: []string{"a", "a"}}, wantErr: "Duplicate value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeGPRPriorityArgs(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}
