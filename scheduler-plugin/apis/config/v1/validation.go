package v1

import (
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateWorkspaceBindingArgs checks defaulted args.
func ValidateWorkspaceBindingArgs(path *field.Path, a *WorkspaceBindingArgs) error {
	var errs field.ErrorList
	errs = append(errs, validateNamespaces(path.Child("exemptNamespaces"), a.ExemptNamespaces)...)
	p := path.Child("gpuResourceNames")
	if len(a.GPUResourceNames) == 0 {
		errs = append(errs, field.Required(p, "at least one resource name"))
	}
	seen := sets.New[string]()
	for i, n := range a.GPUResourceNames {
		for _, msg := range validation.IsQualifiedName(n) {
			errs = append(errs, field.Invalid(p.Index(i), n, msg))
		}
		if seen.Has(n) {
			errs = append(errs, field.Duplicate(p.Index(i), n))
		}
		seen.Insert(n)
	}
	return errs.ToAggregate()
}

// ValidateGPRPriorityArgs checks defaulted args.
func ValidateGPRPriorityArgs(path *field.Path, a *GPRPriorityArgs) error {
	return validateNamespaces(path.Child("exemptNamespaces"), a.ExemptNamespaces).ToAggregate()
}

func validateNamespaces(p *field.Path, names []string) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, n := range names {
		for _, msg := range validation.IsDNS1123Label(n) {
			errs = append(errs, field.Invalid(p.Index(i), n, msg))
		}
		if seen.Has(n) {
			errs = append(errs, field.Duplicate(p.Index(i), n))
		}
		seen.Insert(n)
	}
	return errs
}
