package imagebuild

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// Options are what gpuspace's three images are built from.
type Options struct {
	// BinDir holds gpuspace, gpuspace-scheduler and gpuspace-device-plugin.
	BinDir string
	// Registry and Tag name the images <Registry>/<binary>:<Tag>.
	Registry, Tag string
	// Labels go on every image (org.opencontainers.image.*).
	Labels map[string]string
	// OS and Architecture of the binaries.
	OS, Architecture string
}

// passwd and group name the two users the images run as. Go's os/user and
// some libraries look the uid up; nothing logs in.
var (
	passwd = []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
	group  = []byte("root:x:0:\nnonroot:x:65532:\n")
)

// Gpuspace builds gpuspace's three images from the binaries in o.BinDir:
//
//   - gpuspace, gpuspace-scheduler: static binaries (CGO_ENABLED=0), run as
//     uid/gid 65532;
//   - gpuspace-device-plugin: cgo (go-nvml), so the image carries the C
//     libraries the binary's ELF names (from Debian's libc6, checked with
//     dpkg -S) and nothing else. libnvidia-ml.so.1 is not in it: go-nvml
//     dlopens it, and on a GPU node the NVIDIA container toolkit mounts the
//     host driver's copy into the container (NVIDIA_VISIBLE_DEVICES=all,
//     NVIDIA_DRIVER_CAPABILITIES=utility in the DaemonSet). It runs as root:
//     the kubelet's device-plugin directory (/var/lib/kubelet/device-plugins)
//     is root-owned and the plugin creates its socket there; the DaemonSet
//     drops every capability.
//
// No image has a shell, nor a CA bundle: every TLS peer gpuspace talks to
// is named with its CA (the ServiceAccount's, a kubeconfig's), and the
// host's bundle would make the images differ between machines.
func Gpuspace(o Options) ([]Named, error) {
	common := []File{
		{Path: "/etc/passwd", Data: passwd, Mode: 0o644},
		{Path: "/etc/group", Data: group, Mode: 0o644},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
		{Path: "/home/nonroot", Dir: true, Mode: 0o755},
	}
	var out []Named
	for _, b := range []struct {
		name string
		root bool
		libc bool
	}{{"gpuspace", false, false}, {"gpuspace-scheduler", false, false}, {"gpuspace-device-plugin", true, true}} {
		bin := filepath.Join(o.BinDir, b.name)
		files := append(append([]File(nil), common...), File{Path: "/" + b.name, Source: bin, Mode: 0o755})
		libs, err := LibcFiles(bin, "libc6")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		if len(libs) > 0 && !b.libc {
			return nil, fmt.Errorf("%s is dynamically linked (needs %d C libraries): build it with CGO_ENABLED=0", bin, len(libs))
		}
		files = append(files, libs...)
		img, err := Build(Spec{
			Files: files, Entrypoint: []string{"/" + b.name}, Root: b.root,
			Env: []string{"PATH=/"}, Labels: withTitle(o.Labels, b.name),
			OS: o.OS, Architecture: o.Architecture,
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		out = append(out, Named{Ref: fmt.Sprintf("%s/%s:%s", strings.TrimSuffix(o.Registry, "/"), b.name, o.Tag), Image: img})
	}
	return out, nil
}

func withTitle(labels map[string]string, title string) map[string]string {
	m := map[string]string{"org.opencontainers.image.title": title}
	for k, v := range labels {
		m[k] = v
	}
	return m
}

// Base is the last path element of an image reference without its tag:
// "gpuspace/gpuspace-scheduler:dev" -> "gpuspace-scheduler".
func Base(ref string) string {
	b := path.Base(ref)
	if i := strings.LastIndex(b, ":"); i > 0 {
		b = b[:i]
	}
	return b
}
