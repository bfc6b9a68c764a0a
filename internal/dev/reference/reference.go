// Package reference finds the third-party material some tests compare
// gpuspace with — the public EGS Python SDK and the EGS Postman
// collection. The repository holds only what we wrote, so that material
// lives in the workplace's shared folder beside the clone
// (../shared/reference, as CI's clean clone has it), not in the tree.
//
// A test asks for what it needs with Path: where the material is absent
// (a user's own clone) the test skips with a one-line reason; under CI
// (CI=1 or CI=true) it fails instead, so that CI never passes a test it
// did not run.
package reference

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// EnvDir overrides the reference folder (default ../shared/reference
// beside the module root).
const EnvDir = "GPUSPACE_REFERENCE_DIR"

// Dir returns the reference folder: $GPUSPACE_REFERENCE_DIR if set,
// otherwise ../shared/reference beside the directory holding go.mod
// above the working directory (a test runs in its package's folder).
func Dir() (string, error) {
	if dir := os.Getenv(EnvDir); dir != "" {
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "..", "shared", "reference"), nil
}

// moduleRoot returns dir or the nearest directory above it holding go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod in %s or above", dir)
		}
	}
}

// Find returns the path of rel (slash-separated) in the reference folder,
// or an error saying where it was looked for.
func Find(rel string) (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s is not in %s (set %s to the reference folder)", rel, dir, EnvDir)
		}
		return "", err
	}
	return p, nil
}

// Path returns the path of rel in the reference folder. Where it is
// absent, t skips, or fails under CI.
func Path(t testing.TB, rel string) string {
	t.Helper()
	p, err := Find(rel)
	if err == nil {
		return p
	}
	if underCI() {
		t.Fatalf("reference material missing, and CI requires it: %v", err)
	}
	t.Skipf("reference material missing: %v", err)
	return ""
}

// underCI reports whether CI is set to a true value (CI=1, CI=true).
func underCI() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}
