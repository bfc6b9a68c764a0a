// Package imagebuild builds gpuspace's container images without Docker: each
// image is one layer assembled from files on this machine (a binary, for a
// cgo binary the C libraries it links, /etc/passwd and /etc/group naming the
// user it runs as, CA certificates) on an empty base, by
// github.com/google/go-containerregistry. No shell, no package manager.
//
// Images are reproducible: every tar entry has a fixed time, owner and
// order, the config's creation time is the Unix epoch, and gzip output is a
// function of its input, so the same files give the same digests.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the time of every file and of every image's creation.
var Epoch = time.Unix(0, 0).UTC()

// NonRoot is the uid and gid images run as unless their Spec says
// otherwise (distroless' "nonroot").
const NonRoot = 65532

// File is one entry of an image's layer.
type File struct {
	// Path inside the image, absolute ("/gpuspace").
	Path string
	// Mode is the permission bits (0o755 for executables).
	Mode int64
	// Data is a regular file's content; Source, when set, is read instead.
	Data []byte
	// Source is a file on this machine whose content the entry gets.
	Source string
	// Link makes the entry a symbolic link to Link.
	Link string
	// Dir makes the entry a directory.
	Dir bool
}

// Spec describes one image.
type Spec struct {
	// Files of the single layer; parent directories are added.
	Files []File
	// Entrypoint is the container's command.
	Entrypoint []string
	// Env is the container's environment (KEY=value).
	Env []string
	// UID and GID the container runs as; 0 is root and must be asked for
	// with Root, so that a zero value never means root by accident.
	UID, GID int
	// Root runs the image as uid 0.
	Root bool
	// Labels are the config's labels (org.opencontainers.image.*).
	Labels map[string]string
	// Platform of the binaries (runtime.GOOS/GOARCH of the build).
	OS, Architecture string
}

// user is the image's "uid:gid" (a default of NonRoot).
func (s Spec) user() string {
	if s.Root {
		return "0:0"
	}
	uid, gid := s.UID, s.GID
	if uid == 0 {
		uid = NonRoot
	}
	if gid == 0 {
		gid = NonRoot
	}
	return fmt.Sprintf("%d:%d", uid, gid)
}

// Build assembles the image of spec: an OCI manifest and config over one
// gzip layer.
func Build(spec Spec) (v1.Image, error) {
	layerTar, err := layerTar(spec.Files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "gpuspace imagebuild", Comment: "one layer: the binary and what it needs"},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = spec.OS, spec.Architecture
	cfg.Created = v1.Time{Time: Epoch}
	cfg.Config.Entrypoint = spec.Entrypoint
	cfg.Config.Env = spec.Env
	cfg.Config.User = spec.user()
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = spec.Labels
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return img, nil
}

// layerTar writes files, and each one's missing parent directories, as an
// uncompressed tar in path order, owned by root, at Epoch.
func layerTar(files []File) ([]byte, error) {
	entries := map[string]File{}
	for _, f := range files {
		p := strings.TrimPrefix(path.Clean(f.Path), "/")
		if p == "" || p == "." || !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("file path %q: want an absolute path below /", f.Path)
		}
		if _, dup := entries[p]; dup {
			return nil, fmt.Errorf("file %s: listed twice", f.Path)
		}
		entries[p] = f
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = File{Path: "/" + d, Dir: true, Mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for p := range entries {
		names = append(names, p)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		if err := writeEntry(tw, p, entries[p]); err != nil {
			return nil, fmt.Errorf("file /%s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeEntry(tw *tar.Writer, name string, f File) error {
	hdr := &tar.Header{Name: name, Mode: f.Mode, ModTime: Epoch}
	var data []byte
	switch {
	case f.Dir:
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	case f.Link != "":
		hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, f.Link, 0o777
	default:
		data = f.Data
		if f.Source != "" {
			var err error
			if data, err = os.ReadFile(f.Source); err != nil {
				return err
			}
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(data))
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}
