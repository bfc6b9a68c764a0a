package v1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// DecodeWorkspaceBindingArgs turns a profile's args for WorkspaceBinding
// (nil, raw JSON/YAML as the scheduler passes out-of-tree args, or the typed
// struct) into defaulted, validated args.
func DecodeWorkspaceBindingArgs(obj runtime.Object) (*WorkspaceBindingArgs, error) {
	args := &WorkspaceBindingArgs{}
	if err := decode(obj, args); err != nil {
		return nil, fmt.Errorf("WorkspaceBinding args: %w", err)
	}
	SetDefaultsWorkspaceBindingArgs(args)
	if err := ValidateWorkspaceBindingArgs(field.NewPath("args"), args); err != nil {
		return nil, fmt.Errorf("WorkspaceBinding args: %w", err)
	}
	return args, nil
}

// DecodeGPRPriorityArgs is DecodeWorkspaceBindingArgs for GPRPriority.
func DecodeGPRPriorityArgs(obj runtime.Object) (*GPRPriorityArgs, error) {
	args := &GPRPriorityArgs{}
	if err := decode(obj, args); err != nil {
		return nil, fmt.Errorf("GPRPriority args: %w", err)
	}
	SetDefaultsGPRPriorityArgs(args)
	if err := ValidateGPRPriorityArgs(field.NewPath("args"), args); err != nil {
		return nil, fmt.Errorf("GPRPriority args: %w", err)
	}
	return args, nil
}

func decode(obj runtime.Object, into runtime.Object) error {
	switch o := obj.(type) {
	case nil:
		return nil
	case *runtime.Unknown:
		if len(o.Raw) == 0 {
			return nil
		}
		// Strict: a misspelt field must not silently fall back to defaults.
		// YAML is a superset of JSON, so this reads either content type.
		if err := yaml.UnmarshalStrict(o.Raw, into); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		return nil
	case *WorkspaceBindingArgs:
		dst, ok := into.(*WorkspaceBindingArgs)
		if !ok {
			return fmt.Errorf("want %T, got %T", into, obj)
		}
		// Copy, so that defaulting never writes into the caller's object.
		o.DeepCopyInto(dst)
		return nil
	case *GPRPriorityArgs:
		dst, ok := into.(*GPRPriorityArgs)
		if !ok {
			return fmt.Errorf("want %T, got %T", into, obj)
		}
		o.DeepCopyInto(dst)
		return nil
	default:
		return fmt.Errorf("want %T or raw JSON, got %T", into, obj)
	}
}
