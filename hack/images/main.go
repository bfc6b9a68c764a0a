// Command images is `make images`: it packs the binaries `make images`
// built (-trimpath, stripped) into the container images of gpuspace,
// gpuspace-scheduler and gpuspace-device-plugin, without Docker
// (internal/dev/imagebuild), and writes them as one OCI image layout
// (<out>/oci) and one docker-archive tarball per image (<out>/<name>.tar,
// for ctr images import, docker load, kind load image-archive). It prints
// each image's reference and manifest digest; the same binaries give the
// same digests.
//
//	go run ./hack/images --bin-dir _output/bin --out _output/images \
//	  --registry gpuspace --tag dev --version v0.3.0 --revision <commit>
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/gpuspace/gpuspace/internal/dev/imagebuild"
)

func main() {
	binDir := flag.String("bin-dir", "_output/bin", "directory holding the three binaries")
	out := flag.String("out", "_output/images", "output directory")
	registry := flag.String("registry", "gpuspace", "image names are <registry>/<binary>:<tag>")
	tag := flag.String("tag", "dev", "image tag")
	version := flag.String("version", "dev", "org.opencontainers.image.version")
	revision := flag.String("revision", "", "org.opencontainers.image.revision (the commit)")
	source := flag.String("source", "https://github.com/gpuspace/gpuspace", "org.opencontainers.image.source")
	flag.Parse()
	labels := map[string]string{
		"org.opencontainers.image.version":  *version,
		"org.opencontainers.image.revision": *revision,
		"org.opencontainers.image.source":   *source,
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	images, err := imagebuild.Gpuspace(imagebuild.Options{
		BinDir: *binDir, Registry: *registry, Tag: *tag, Labels: labels,
		OS: "linux", Architecture: runtime.GOARCH,
	})
	if err == nil {
		err = write(*out, images)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func write(out string, images []imagebuild.Named) error {
	if err := imagebuild.WriteLayout(filepath.Join(out, "oci"), images); err != nil {
		return err
	}
	for _, n := range images {
		d, err := n.Image.Digest()
		if err != nil {
			return err
		}
		file := filepath.Join(out, imagebuild.Base(n.Ref)+".tar")
		if err := imagebuild.WriteArchive(file, n); err != nil {
			return err
		}
		fmt.Printf("%s@%s %s\n", n.Ref, d, file)
	}
	fmt.Printf("OCI layout: %s\n", filepath.Join(out, "oci"))
	return nil
}
