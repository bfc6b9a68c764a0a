// Command nodeimage is the whole user space of the containers that
// hack/e2e-node.sh runs on a real kubelet, and the tool that packs them.
//
//	nodeimage pack -o images.tar   write an OCI image layout archive holding
//	                               two images made of this (static) binary:
//	                               the pod sandbox ("pause") image and the
//	                               test image; import it with ctr
//	nodeimage pause                what the sandbox image runs: wait for a
//	                               signal, reap children
//	nodeimage env                  what the test image runs: print the
//	                               environment (sorted, one KEY=value a
//	                               line) to stdout, and to $ENV_FILE if set
//
// There is no registry in the sandbox: the images are imported into
// containerd and pods use imagePullPolicy: Never. Build it static
// (CGO_ENABLED=0), as the image has nothing else in it.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Image names the stage configures (containerd's sandbox_image, the pod's
// image). Fully qualified, as the CRI normalises names.
const (
	PauseImage = "registry.gpuspace.local/e2e/pause:1"
	TestImage  = "registry.gpuspace.local/e2e/env:1"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "pause":
		pause()
	case "env":
		printEnv()
	case "pack":
		fs := flag.NewFlagSet("pack", flag.ExitOnError)
		out := fs.String("o", "images.tar", "output OCI image layout archive")
		_ = fs.Parse(os.Args[2:])
		if err := pack(*out); err != nil {
			fmt.Fprintln(os.Stderr, "nodeimage pack:", err)
			os.Exit(1)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: nodeimage pack -o FILE | pause | env")
	os.Exit(2)
}

func pause() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}

func printEnv() {
	env := os.Environ()
	sort.Strings(env)
	out := strings.Join(env, "\n") + "\n"
	fmt.Print(out)
	if f := os.Getenv("ENV_FILE"); f != "" {
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write", f+":", err)
			os.Exit(1)
		}
	}
}

// blob is one content-addressed file of the layout.
type blob struct {
	mediaType string
	data      []byte
}

func (b blob) digest() string {
	sum := sha256.Sum256(b.data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (b blob) descriptor() map[string]any {
	return map[string]any{"mediaType": b.mediaType, "digest": b.digest(), "size": len(b.data)}
}

func pack(out string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	// One uncompressed layer: /nodeimage, and /tmp for good measure.
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	epoch := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "nodeimage", Mode: 0o755, Size: int64(len(bin)), ModTime: epoch}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBlob := blob{"application/vnd.oci.image.layer.v1.tar", layer.Bytes()}
	diffID := layerBlob.digest() // uncompressed: the diff ID is the digest

	blobs := []blob{layerBlob}
	var manifests []map[string]any
	for _, img := range []struct{ name, mode string }{{PauseImage, "pause"}, {TestImage, "env"}} {
		cfg, err := json.Marshal(map[string]any{
			"architecture": runtime.GOARCH,
			"os":           "linux",
			"config": map[string]any{
				"Entrypoint": []string{"/nodeimage", img.mode},
				"Env":        []string{"PATH=/"},
				"WorkingDir": "/",
			},
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		})
		if err != nil {
			return err
		}
		cfgBlob := blob{"application/vnd.oci.image.config.v1+json", cfg}
		man, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        cfgBlob.descriptor(),
			"layers":        []any{layerBlob.descriptor()},
		})
		if err != nil {
			return err
		}
		manBlob := blob{"application/vnd.oci.image.manifest.v1+json", man}
		blobs = append(blobs, cfgBlob, manBlob)
		d := manBlob.descriptor()
		d["platform"] = map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
		d["annotations"] = map[string]string{
			"io.containerd.image.name":          img.name,
			"org.opencontainers.image.ref.name": img.name[strings.LastIndex(img.name, ":")+1:],
		}
		manifests = append(manifests, d)
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     manifests,
	})
	if err != nil {
		return err
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	aw := tar.NewWriter(f)
	add := func(name string, data []byte) error {
		if err := aw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := aw.Write(data)
		return err
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, b := range blobs {
		d := b.digest()
		if seen[d] {
			continue
		}
		seen[d] = true
		if err := add("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), b.data); err != nil {
			return err
		}
	}
	if err := aw.Close(); err != nil {
		return err
	}
	return f.Close()
}
