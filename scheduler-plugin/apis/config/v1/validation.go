package v1

import (
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateWorkspaceBindingArgs checks defaulted args.
func ValidateWorkspaceBindingArgs(path *field.Path, a *WorkspaceBindingArgs) error {
	var errs field.ErrorList
	errs = append(errs, validateNames(path.Child("exemptNamespaces"), a.ExemptNamespaces, validation.IsDNS1123Label)...)
	p := path.Child("gpuResourceNames")
	if len(a.GPUResourceNames) == 0 {
		errs = append(errs, field.Required(p, "at least one resource name"))
	}
	errs = append(errs, validateNames(p, a.GPUResourceNames, validation.IsQualifiedName)...)
	errs = append(errs, validateNames(path.Child("gpuDeviceClasses"), a.GPUDeviceClasses, validation.IsDNS1123Subdomain)...)
	return errs.ToAggregate()
}

// ValidateGPRPriorityArgs checks defaulted args.
func ValidateGPRPriorityArgs(path *field.Path, a *GPRPriorityArgs) error {
	return validateNames(path.Child("exemptNamespaces"), a.ExemptNamespaces, validation.IsDNS1123Label).ToAggregate()
}

// validateNames checks that each of names is valid by valid (which returns
// what is wrong) and none is there twice.
func validateNames(p *field.Path, names []string, valid func(string) []string) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, n := range names {
		for _, msg := range valid(n) {
			errs = append(errs, field.Invalid(p.Index(i), n, msg))
		}
		if seen.Has(n) {
			errs = append(errs, field.Duplicate(p.Index(i), n))
		}
		seen.Insert(n)
	}
	return errs
}
