package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// KubeVersionLDFlags stamps Kubernetes binaries built from the module with
// their release; without it they report v0.0.0-master.
const KubeVersionLDFlags = "-X k8s.io/component-base/version.gitVersion=v1.37.1" +
	" -X k8s.io/component-base/version.gitMajor=1" +
	" -X k8s.io/component-base/version.gitMinor=37"

// Binary is a program the local control plane runs, and the package it is
// built from.
type Binary struct {
	Name    string
	Package string
	LDFlags string
}

// Binaries the control plane needs.
var (
	EtcdBinary              = Binary{Name: "etcd", Package: "./internal/dev/controlplane/etcd"}
	APIServerBinary         = Binary{Name: "kube-apiserver", Package: "k8s.io/kubernetes/cmd/kube-apiserver", LDFlags: KubeVersionLDFlags}
	ControllerManagerBinary = Binary{Name: "kube-controller-manager", Package: "k8s.io/kubernetes/cmd/kube-controller-manager", LDFlags: KubeVersionLDFlags}
)

// BinDir returns where the control plane's binaries are: $GPUSPACE_BIN_DIR,
// else bin/ of the module root above the working directory, else the
// directory of the running executable.
func BinDir() string {
	if d := os.Getenv("GPUSPACE_BIN_DIR"); d != "" {
		return d
	}
	if root, err := ModuleRoot(); err == nil {
		return filepath.Join(root, "bin")
	}
	if exe, err := os.Executable(); err == nil {
		return filepath.Dir(exe)
	}
	return "bin"
}

// ModuleRoot walks up from the working directory to the gpuspace go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/gpuspace/gpuspace\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the gpuspace module")
		}
		dir = parent
	}
}

// EnsureBinaries makes sure each binary exists in binDir, building missing
// ones from the module when inside the source tree. Builds are serialised
// with a file lock, because every test package starts its own control
// plane and `go test ./...` runs them in parallel.
func EnsureBinaries(ctx context.Context, binDir string, bins ...Binary) error {
	var missing []Binary
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(binDir, b.Name)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	root, err := ModuleRoot()
	if err != nil {
		names := make([]string, len(missing))
		for i, b := range missing {
			names[i] = b.Name
		}
		return fmt.Errorf("%s not found in %s (set GPUSPACE_BIN_DIR, or run `make build` in the source tree)", strings.Join(names, ", "), binDir)
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", binDir, err)
	}
	lock, err := os.OpenFile(filepath.Join(binDir, ".build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("take build lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close anyway
	for _, b := range missing {
		out := filepath.Join(binDir, b.Name)
		if _, err := os.Stat(out); err == nil {
			continue // built by another process while we waited for the lock
		}
		tmp := out + ".tmp"
		cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", b.LDFlags, "-o", tmp, b.Package)
		cmd.Dir = root
		if outp, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", b.Package, err, outp)
		}
		if err := os.Rename(tmp, out); err != nil {
			return fmt.Errorf("install %s: %w", b.Name, err)
		}
	}
	return nil
}
