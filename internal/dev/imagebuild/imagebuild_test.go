package imagebuild

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// binDir makes a directory with the three binaries: the static ones are a
// small CGO_ENABLED=0 program, the device plugin this test binary (cgo:
// dynamically linked to glibc, as the real one).
func binDir(t *testing.T, dynamicGpuspace bool) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: %v", ErrNoDpkg)
		}
		t.Skip(ErrNoDpkg)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "go.mod"), "module static\n\ngo 1.22\n")
	write(t, filepath.Join(src, "main.go"), "package main\n\nfunc main() { println(\"static\") }\n")
	static := filepath.Join(dir, "static")
	cmd := exec.Command("go", "build", "-trimpath", "-o", static, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if libs, err := SharedLibraries(self); err != nil || len(libs) == 0 {
		t.Skipf("the test binary is not dynamically linked (CGO_ENABLED=0?): libs %v, err %v", libs, err)
	}
	bins := filepath.Join(dir, "bin")
	for name, from := range map[string]string{"gpuspace": static, "gpuspace-scheduler": static, "gpuspace-device-plugin": self} {
		if dynamicGpuspace && name == "gpuspace" {
			from = self
		}
		copyFile(t, from, filepath.Join(bins, name))
	}
	return bins
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func options(bins string) Options {
	return Options{
		BinDir: bins, Registry: "gpuspace", Tag: "test", OS: "linux", Architecture: runtime.GOARCH,
		Labels: map[string]string{"org.opencontainers.image.version": "v9.9.9", "org.opencontainers.image.source": "https://example.com/src", "org.opencontainers.image.revision": "abc"},
	}
}

// build writes the images as `make images` does and returns each image's
// manifest digest and the sha256 of every file written.
func build(t *testing.T, bins, out string) (digests, files map[string]string) {
	t.Helper()
	images, err := Gpuspace(options(bins))
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(filepath.Join(out, "oci"), images); err != nil {
		t.Fatal(err)
	}
	digests = map[string]string{}
	for _, n := range images {
		d, err := n.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[n.Ref] = d.String()
		if err := WriteArchive(filepath.Join(out, Base(n.Ref)+".tar"), n); err != nil {
			t.Fatal(err)
		}
	}
	files = map[string]string{}
	err = filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(out, p)
		files[rel] = hex.EncodeToString(sum[:])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return digests, files
}

// Two builds of the same binaries, in different directories at different
// times, give the same digests and byte-identical layouts and archives.
func TestGpuspaceReproducible(t *testing.T) {
	bins := binDir(t, false)
	d1, f1 := build(t, bins, filepath.Join(t.TempDir(), "a"))
	// A different mtime on the inputs changes nothing.
	for _, b := range []string{"gpuspace", "gpuspace-scheduler", "gpuspace-device-plugin"} {
		if err := os.Chtimes(filepath.Join(bins, b), Epoch.AddDate(30, 0, 0), Epoch.AddDate(31, 0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	d2, f2 := build(t, bins, filepath.Join(t.TempDir(), "b"))
	if len(d1) != 3 {
		t.Fatalf("images %v, want 3", d1)
	}
	for ref, d := range d1 {
		if d2[ref] != d {
			t.Errorf("%s: digest %s then %s", ref, d, d2[ref])
		}
	}
	if len(f1) != len(f2) {
		t.Errorf("files %d then %d", len(f1), len(f2))
	}
	for p, sum := range f1 {
		if f2[p] != sum {
			t.Errorf("%s differs between builds", p)
		}
	}
}

// layerFiles reads an image's single layer: path -> header.
func layerFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, err %v: want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	var prev string
	eachEntry(t, rc, func(h *tar.Header, _ io.Reader) {
		if h.Name < prev {
			t.Errorf("entry %s after %s: not sorted", h.Name, prev)
		}
		prev = h.Name
		if !h.ModTime.Equal(Epoch) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d, want the epoch and root", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		files["/"+strings.TrimSuffix(h.Name, "/")] = h
	})
	return files
}

// eachEntry calls fn with each entry of the tar r.
func eachEntry(t *testing.T, r io.Reader, fn func(*tar.Header, io.Reader)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(h, tr)
	}
}

func TestGpuspaceImages(t *testing.T) {
	bins := binDir(t, false)
	images, err := Gpuspace(options(bins))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		user string
		libc bool
	}{
		"gpuspace/gpuspace:test":               {"65532:65532", false},
		"gpuspace/gpuspace-scheduler:test":     {"65532:65532", false},
		"gpuspace/gpuspace-device-plugin:test": {"0:0", true},
	}
	for _, n := range images {
		w, ok := want[n.Ref]
		if !ok {
			t.Errorf("unexpected image %s", n.Ref)
			continue
		}
		delete(want, n.Ref)
		t.Run(Base(n.Ref), func(t *testing.T) {
			cfg, err := n.Image.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			bin := "/" + Base(n.Ref)
			if cfg.Config.User != w.user {
				t.Errorf("user %q, want %q", cfg.Config.User, w.user)
			}
			if got := strings.Join(cfg.Config.Entrypoint, " "); got != bin {
				t.Errorf("entrypoint %q, want %q", got, bin)
			}
			if !cfg.Created.Time.Equal(Epoch) || cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
				t.Errorf("created %v os %s arch %s", cfg.Created, cfg.OS, cfg.Architecture)
			}
			for k, v := range map[string]string{"org.opencontainers.image.version": "v9.9.9", "org.opencontainers.image.source": "https://example.com/src", "org.opencontainers.image.revision": "abc", "org.opencontainers.image.title": Base(n.Ref)} {
				if cfg.Config.Labels[k] != v {
					t.Errorf("label %s=%q, want %q", k, cfg.Config.Labels[k], v)
				}
			}
			mt, _ := n.Image.MediaType()
			if mt != "application/vnd.oci.image.manifest.v1+json" {
				t.Errorf("media type %s, want OCI", mt)
			}
			files := layerFiles(t, n.Image)
			for _, sh := range []string{"/bin/sh", "/bin/bash", "/usr/bin/sh", "/bin/busybox"} {
				if _, ok := files[sh]; ok {
					t.Errorf("the image has a shell: %s", sh)
				}
			}
			if h := files[bin]; h == nil || h.Mode != 0o755 || h.Typeflag != tar.TypeReg {
				t.Errorf("%s missing or not an executable file: %+v", bin, h)
			}
			if h := files["/tmp"]; h == nil || h.Mode != 0o1777 {
				t.Errorf("/tmp missing or not 1777: %+v", h)
			}
			var libs []string
			for p := range files {
				if strings.Contains(p, ".so") {
					libs = append(libs, p)
				}
			}
			sort.Strings(libs)
			if !w.libc {
				if len(libs) > 0 {
					t.Errorf("a static image carries C libraries: %v", libs)
				}
				return
			}
			// Exactly what the ELF needs, at Debian's paths.
			needed, err := SharedLibraries(filepath.Join(bins, Base(n.Ref)))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range needed {
				if _, ok := files[l]; !ok && !viaLink(files, l) {
					t.Errorf("needed %s is not in the image (has %v)", l, libs)
				}
			}
			for _, l := range libs {
				if !strings.Contains(l, "libc.so") && !strings.Contains(l, "ld-linux") && !strings.Contains(l, "libm.so") && !strings.Contains(l, "libpthread") && !strings.Contains(l, "libdl") && !strings.Contains(l, "libresolv") {
					t.Errorf("unexpected library %s", l)
				}
			}
		})
	}
	for ref := range want {
		t.Errorf("image %s missing", ref)
	}
}

// viaLink says whether p reaches a file of the image through one of its
// links (/lib -> usr/lib).
func viaLink(files map[string]*tar.Header, p string) bool {
	for name, h := range files {
		if h.Typeflag != tar.TypeSymlink {
			continue
		}
		if rest, ok := strings.CutPrefix(p, name+"/"); ok {
			target := h.Linkname
			if !strings.HasPrefix(target, "/") {
				target = filepath.Join(filepath.Dir(name), target)
			}
			q := filepath.Join(target, rest)
			if _, ok := files[q]; ok {
				return true
			}
			return viaLink(files, q)
		}
	}
	return false
}

// A gpuspace binary built with cgo would need libc the image lacks: refused.
func TestGpuspaceRefusesDynamicStaticImage(t *testing.T) {
	bins := binDir(t, true)
	_, err := Gpuspace(options(bins))
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("err %v, want a dynamically linked gpuspace refused", err)
	}
}

// The layout and the archives read back, naming each image by its
// reference, with the digest it was built with.
func TestWriteReadBack(t *testing.T) {
	bins := binDir(t, false)
	out := t.TempDir()
	digests, _ := build(t, bins, out)
	p, err := layout.FromPath(filepath.Join(out, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 3 {
		t.Fatalf("index has %d manifests, want 3", len(m.Manifests))
	}
	for _, d := range m.Manifests {
		ref := strings.TrimPrefix(d.Annotations[annotationContainerdName], "docker.io/")
		if digests[ref] != d.Digest.String() || d.Annotations[annotationRefName] != "docker.io/"+ref {
			t.Errorf("index entry %v: want %s at %s", d.Annotations, ref, digests[ref])
		}
	}
	for ref, d := range digests {
		got := archiveIndex(t, filepath.Join(out, Base(ref)+".tar"))
		if len(got.Manifests) != 1 || got.Manifests[0].Digest.String() != d || got.Manifests[0].Annotations[annotationContainerdName] != "docker.io/"+ref {
			t.Errorf("%s: archive index %+v, want the one image %s", ref, got.Manifests, d)
		}
	}
}

// archiveIndex reads the index.json of an OCI layout archive and checks
// that every blob it names is there.
func archiveIndex(t *testing.T, file string) *v1.IndexManifest {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blobs := map[string]bool{}
	var idx *v1.IndexManifest
	eachEntry(t, f, func(h *tar.Header, tr io.Reader) {
		if rest, ok := strings.CutPrefix(h.Name, "blobs/sha256/"); ok && rest != "" {
			blobs["sha256:"+rest] = true
		}
		if h.Name == "index.json" {
			var err error
			if idx, err = v1.ParseIndexManifest(tr); err != nil {
				t.Fatal(err)
			}
		}
	})
	if idx == nil {
		t.Fatalf("%s: no index.json", file)
	}
	for _, m := range idx.Manifests {
		if !blobs[m.Digest.String()] {
			t.Errorf("%s: manifest blob %s missing", file, m.Digest)
		}
	}
	return idx
}

func TestLayerTarRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []File
		want  string
	}{
		{"relative", []File{{Path: "gpuspace"}}, "absolute"},
		{"root", []File{{Path: "/"}}, "absolute"},
		{"twice", []File{{Path: "/a"}, {Path: "/a/"}}, "twice"},
		{"missing source", []File{{Path: "/a", Source: "/nonexistent/file"}}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := layerTar(tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// Parent directories are added once, the entries sorted, whatever the
// order given.
func TestLayerTarParents(t *testing.T) {
	img, err := Build(Spec{Files: []File{{Path: "/b/c/f", Data: []byte("x"), Mode: 0o644}, {Path: "/a", Link: "b/c/f"}}})
	if err != nil {
		t.Fatal(err)
	}
	files := layerFiles(t, img)
	var names []string
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	if got := strings.Join(names, " "); got != "/a /b /b/c /b/c/f" {
		t.Fatalf("entries %s", got)
	}
	if files["/a"].Typeflag != tar.TypeSymlink || files["/a"].Linkname != "b/c/f" {
		t.Errorf("/a: %+v", files["/a"])
	}
	if cfg, _ := img.ConfigFile(); cfg.Config.User != "65532:65532" {
		t.Errorf("a zero Spec runs as %q, want the non-root default", cfg.Config.User)
	}
}
