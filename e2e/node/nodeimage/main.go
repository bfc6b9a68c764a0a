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
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/gpuspace/gpuspace/internal/dev/imagebuild"
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

// pack writes the two images, one layer each holding this binary at
// /nodeimage, as an OCI layout archive (internal/dev/imagebuild, the
// library make images uses).
func pack(out string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var images []imagebuild.Named
	for _, img := range []struct{ name, mode string }{{PauseImage, "pause"}, {TestImage, "env"}} {
		i, err := imagebuild.Build(imagebuild.Spec{
			Files: []imagebuild.File{
				{Path: "/nodeimage", Source: self, Mode: 0o755},
				{Path: "/tmp", Dir: true, Mode: 0o1777},
			},
			Entrypoint: []string{"/nodeimage", img.mode},
			Env:        []string{"PATH=/"},
			// The pod's container writes $ENV_FILE wherever the stage says.
			Root: true,
			OS:   "linux", Architecture: runtime.GOARCH,
		})
		if err != nil {
			return err
		}
		images = append(images, imagebuild.Named{Ref: img.name, Image: i})
	}
	return imagebuild.WriteArchive(out, images...)
}
