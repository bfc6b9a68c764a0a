package domain

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// claimSpec asks for one device of each class, each as exactly that class.
func claimSpec(classes ...string) *resourcev1.ResourceClaimSpec {
	s := &resourcev1.ResourceClaimSpec{}
	for _, c := range classes {
		s.Devices.Requests = append(s.Devices.Requests, resourcev1.DeviceRequest{
			Name: "r", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: c}})
	}
	return s
}

func TestPodUsesGPUs(t *testing.T) {
	limits := func(name corev1.ResourceName, q string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Limits: corev1.ResourceList{name: resource.MustParse(q)}}
	}
	withContainer := func(r corev1.ResourceRequirements) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: r}}}}
	}
	firstAvailable := &resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
		Name: "any", FirstAvailable: []resourcev1.DeviceSubRequest{{Name: "cpu", DeviceClassName: "cpu.example.com"}, {Name: "gpu", DeviceClassName: "gpu.nvidia.com"}},
	}}}}
	tests := []struct {
		name   string
		pod    *corev1.Pod
		rule   GPUPodRule
		claims []*resourcev1.ResourceClaimSpec
		want   bool
	}{
		{"nothing", withContainer(corev1.ResourceRequirements{}), GPUPodRule{}, nil, false},
		{"nvidia.com/gpu limit", withContainer(limits("nvidia.com/gpu", "1")), GPUPodRule{}, nil, true},
		{"zero GPUs", withContainer(limits("nvidia.com/gpu", "0")), GPUPodRule{}, nil, false},
		{"GPU memory", withContainer(limits("gpuspace.io/gpu-memory", "1Gi")), GPUPodRule{}, nil, true},
		{"a resource not configured", withContainer(limits("nvidia.com/gpu", "1")),
			GPUPodRule{ResourceNames: []corev1.ResourceName{"amd.com/gpu"}}, nil, false},
		{"DRA: a claim for a GPU", withContainer(corev1.ResourceRequirements{}), GPUPodRule{},
			[]*resourcev1.ResourceClaimSpec{claimSpec("gpu.nvidia.com")}, true},
		{"DRA: a MIG slice", withContainer(corev1.ResourceRequirements{}), GPUPodRule{},
			[]*resourcev1.ResourceClaimSpec{claimSpec("mig.nvidia.com")}, true},
		{"DRA: a GPU among other requests", withContainer(corev1.ResourceRequirements{}), GPUPodRule{},
			[]*resourcev1.ResourceClaimSpec{claimSpec("nic.example.com"), claimSpec("nic.example.com", "gpu.nvidia.com")}, true},
		{"DRA: a GPU as one alternative", withContainer(corev1.ResourceRequirements{}), GPUPodRule{},
			[]*resourcev1.ResourceClaimSpec{firstAvailable}, true},
		{"DRA: no GPU class", withContainer(corev1.ResourceRequirements{}), GPUPodRule{},
			[]*resourcev1.ResourceClaimSpec{claimSpec("nic.example.com")}, false},
		{"DRA: a configured class", withContainer(corev1.ResourceRequirements{}), GPUPodRule{DeviceClasses: []string{"gpu.amd.com"}},
			[]*resourcev1.ResourceClaimSpec{claimSpec("gpu.amd.com")}, true},
		{"DRA: the default class, configured away", withContainer(corev1.ResourceRequirements{}), GPUPodRule{DeviceClasses: []string{}},
			[]*resourcev1.ResourceClaimSpec{claimSpec("gpu.nvidia.com")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PodUsesGPUs(tt.pod, tt.rule, tt.claims); got != tt.want {
				t.Errorf("PodUsesGPUs = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPodClaimSpecs(t *testing.T) {
	claims := map[string]*resourcev1.ResourceClaimSpec{"direct": claimSpec("a"), "generated": claimSpec("b")}
	templates := map[string]*resourcev1.ResourceClaimSpec{"tmpl": claimSpec("c")}
	lookup := func(m map[string]*resourcev1.ResourceClaimSpec) ClaimSpecFunc {
		return func(name string) (*resourcev1.ResourceClaimSpec, error) { return m[name], nil }
	}
	fromTemplate := corev1.PodResourceClaim{Name: "t", ResourceClaimTemplateName: ptr.To("tmpl")}
	tests := []struct {
		name  string
		spec  []corev1.PodResourceClaim
		state []corev1.PodResourceClaimStatus
		want  []string // the class each spec found asks for
	}{
		{"no claims", nil, nil, nil},
		{"a claim by name", []corev1.PodResourceClaim{{Name: "d", ResourceClaimName: ptr.To("direct")}}, nil, []string{"a"}},
		{"a claim not found", []corev1.PodResourceClaim{{Name: "d", ResourceClaimName: ptr.To("gone")}}, nil, nil},
		{"a template, no claim made yet", []corev1.PodResourceClaim{fromTemplate}, nil, []string{"c"}},
		{"a template and the claim made from it", []corev1.PodResourceClaim{fromTemplate},
			[]corev1.PodResourceClaimStatus{{Name: "t", ResourceClaimName: ptr.To("generated")}}, []string{"b"}},
		{"a template whose claim is not found", []corev1.PodResourceClaim{fromTemplate},
			[]corev1.PodResourceClaimStatus{{Name: "t", ResourceClaimName: ptr.To("gone")}}, []string{"c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{ResourceClaims: tt.spec}, Status: corev1.PodStatus{ResourceClaimStatuses: tt.state}}
			got, err := PodClaimSpecs(pod, lookup(claims), lookup(templates))
			if err != nil {
				t.Fatal(err)
			}
			var classes []string
			for _, s := range got {
				classes = append(classes, s.Devices.Requests[0].Exactly.DeviceClassName)
			}
			if len(classes) != len(tt.want) || (len(classes) > 0 && classes[0] != tt.want[0]) {
				t.Errorf("specs ask for %v, want %v", classes, tt.want)
			}
		})
	}
	t.Run("a read error", func(t *testing.T) {
		boom := errors.New("forbidden")
		pod := &corev1.Pod{Spec: corev1.PodSpec{ResourceClaims: []corev1.PodResourceClaim{{Name: "d", ResourceClaimName: ptr.To("direct")}}}}
		_, err := PodClaimSpecs(pod, func(string) (*resourcev1.ResourceClaimSpec, error) { return nil, boom }, lookup(templates))
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
}
