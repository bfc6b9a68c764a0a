package reference

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestDirBesideModuleRoot(t *testing.T) {
	t.Setenv(EnvDir, "")
	got, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	// The test runs in internal/dev/reference: the module root is three up.
	want, err := filepath.Abs(filepath.Join("..", "..", "..", "..", "shared", "reference"))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Dir() = %s, want %s", got, want)
	}
}

func TestModuleRootWithoutGoMod(t *testing.T) {
	if _, err := moduleRoot(t.TempDir()); err == nil {
		t.Error("moduleRoot found a go.mod above a fresh temporary folder")
	}
}

func TestFindHonoursOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "egs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "egs", "c.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvDir, dir)
	got, err := Find("egs/c.json")
	if err != nil || got != filepath.Join(dir, "egs", "c.json") {
		t.Errorf("Find = %q, %v", got, err)
	}
	if _, err := Find("egs/missing.json"); err == nil || !strings.Contains(err.Error(), EnvDir) {
		t.Errorf("Find of a missing file: %v, want an error naming %s", err, EnvDir)
	}
}

// recorder stands for a test: it records a skip or a failure and stops
// the calling goroutine, as testing.T does.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// pathOfMissing calls Path for a file that is not there.
func pathOfMissing(t *testing.T) *recorder {
	t.Setenv(EnvDir, t.TempDir())
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Path(r, "egs-sdk")
		r.failed = "Path returned for a missing file"
	}()
	<-done
	return r
}

func TestPathSkipsWhenMissing(t *testing.T) {
	t.Setenv("CI", "")
	if r := pathOfMissing(t); r.skipped == "" || r.failed != "" {
		t.Errorf("skipped %q, failed %q; want a skip", r.skipped, r.failed)
	}
}

func TestPathFailsUnderCI(t *testing.T) {
	for _, ci := range []string{"1", "true"} {
		t.Setenv("CI", ci)
		if r := pathOfMissing(t); r.failed == "" || r.skipped != "" {
			t.Errorf("CI=%s: skipped %q, failed %q; want a failure", ci, r.skipped, r.failed)
		}
	}
}
