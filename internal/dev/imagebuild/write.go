package imagebuild

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Named is an image and the reference it is published under
// ("gpuspace/gpuspace:dev").
type Named struct {
	Ref   string
	Image v1.Image
}

// Annotations containerd's importer reads for an image's name in an OCI
// layout (ctr images import names it from the first).
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// WriteLayout writes images as one OCI image layout directory (dir/index.json,
// dir/blobs/sha256/...), replacing what was there; each manifest is named in
// the index by its full reference as containerd spells it (containerd's and
// OCI's annotations), so `ctr images import` of a tar of the directory and
// tools reading the layout find them.
func WriteLayout(dir string, images []Named) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, mutate.IndexMediaType(empty.Index, types.OCIImageIndex))
	if err != nil {
		return err
	}
	for _, n := range images {
		ref, err := name.ParseReference(n.Ref)
		if err != nil {
			return fmt.Errorf("image %q: %w", n.Ref, err)
		}
		cfg, err := n.Image.ConfigFile()
		if err != nil {
			return err
		}
		err = p.AppendImage(n.Image,
			layout.WithAnnotations(map[string]string{annotationContainerdName: containerdName(ref), annotationRefName: containerdName(ref)}),
			layout.WithPlatform(v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture}))
		if err != nil {
			return fmt.Errorf("image %s: %w", n.Ref, err)
		}
	}
	return nil
}

// WriteArchive writes images (one, for make images) as an OCI image layout
// archive (a tar of the layout WriteLayout writes, holding only these) each
// named by its Ref:
// `ctr images import`, `kind load image-archive` and `docker load` read
// it, and the image keeps its manifest digest (a docker-archive does not:
// it has no manifest, and importers write a new one). The tar's entries
// are sorted, root-owned and at Epoch, so the file is reproducible too.
func WriteArchive(file string, images ...Named) error {
	tmp, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "layout")
	if err := WriteLayout(dir, images); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return tarDir(dir, file)
}

// tarDir writes the regular files under dir into the tar file, sorted by
// path (filepath.WalkDir's lexical order).
func tarDir(dir, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: Epoch})
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: Epoch}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// containerdName is the name containerd gives ref: docker.io/<repo>:<tag>
// for Docker Hub names (go-containerregistry says index.docker.io).
func containerdName(ref name.Reference) string {
	if ref.Context().RegistryStr() == name.DefaultRegistry {
		sep := ":"
		if _, ok := ref.(name.Digest); ok {
			sep = "@"
		}
		return "docker.io/" + ref.Context().RepositoryStr() + sep + ref.Identifier()
	}
	return ref.Name()
}
