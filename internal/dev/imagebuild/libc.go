package imagebuild

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
)

// LibDirs are where the dynamic loader of a Debian system finds libraries
// (its built-in multiarch paths), searched in this order.
var LibDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/lib", "/usr/lib"}

// SharedLibraries lists what a dynamically linked ELF binary needs to start:
// its interpreter (PT_INTERP, the dynamic loader) and every library its
// DT_NEEDED entries name, and theirs, found in LibDirs. Paths are as the
// loader asks for them (the image must have them at the same paths). A
// static binary needs nothing: nil. Libraries a program opens with dlopen
// (libnvidia-ml.so.1) are not DT_NEEDED and are not listed.
func SharedLibraries(binary string) ([]string, error) {
	f, err := elf.Open(binary)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	interp, err := interpreter(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", binary, err)
	}
	if interp == "" {
		return nil, nil
	}
	seen := map[string]bool{interp: true}
	queue := []*elf.File{f}
	var opened []*elf.File
	defer func() {
		for _, o := range opened {
			o.Close()
		}
	}()
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		needed, err := cur.ImportedLibraries()
		if err != nil {
			return nil, err
		}
		for _, lib := range needed {
			p, err := findLibrary(lib)
			if err != nil {
				return nil, err
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			next, err := elf.Open(p)
			if err != nil {
				return nil, err
			}
			opened = append(opened, next)
			queue = append(queue, next)
		}
	}
	libs := make([]string, 0, len(seen))
	for p := range seen {
		libs = append(libs, p)
	}
	sort.Strings(libs)
	return libs, nil
}

func interpreter(f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", fmt.Errorf("read PT_INTERP: %w", err)
		}
		return strings.TrimRight(string(b), "\x00"), nil
	}
	return "", nil
}

func findLibrary(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, d := range LibDirs {
		p := path.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("library %s: not in %s", name, strings.Join(LibDirs, ", "))
}

// ErrNoDpkg is returned by Owners on a machine without dpkg.
var ErrNoDpkg = errors.New("dpkg not found: the C libraries are taken from Debian packages and their origin checked with dpkg -S")

// Owners maps each path to the Debian package that installed it
// (`dpkg -S`, "libc6:amd64" -> "libc6"). A path no package owns is an
// error: an image gets only files a package put there.
func Owners(paths []string) (map[string]string, error) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		return nil, ErrNoDpkg
	}
	owners := map[string]string{}
	for _, p := range paths {
		out, err := exec.Command("dpkg", "-S", p).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("dpkg -S %s: no package owns it: %s", p, strings.TrimSpace(string(out)))
		}
		line, _, _ := strings.Cut(string(out), "\n")
		pkg, _, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("dpkg -S %s: unexpected answer %q", p, line)
		}
		pkg, _, _ = strings.Cut(pkg, ":") // the architecture qualifier
		owners[p] = pkg
	}
	return owners, nil
}

// LibcFiles returns the files of the image layer that lets binary start:
// each library SharedLibraries lists, read from this machine and checked to
// come from one of the Debian packages allowed (libc6), at the same paths as
// here. Symbolic links on the way (merged /usr's /lib -> usr/lib, the
// loader's /lib64/ld-linux-x86-64.so.2) become the same links in the image,
// so the loader, DT_NEEDED and the NVIDIA container toolkit (which mounts
// libnvidia-ml.so.1 into /usr/lib/<triplet>) see a Debian layout.
func LibcFiles(binary string, allowed ...string) ([]File, error) {
	libs, err := SharedLibraries(binary)
	if err != nil || len(libs) == 0 {
		return nil, err
	}
	owners, err := Owners(libs)
	if err != nil {
		return nil, err
	}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	var files []File
	have := map[string]bool{}
	for _, lib := range libs {
		if !ok[owners[lib]] {
			return nil, fmt.Errorf("%s needs %s from package %s, not one of %v", binary, lib, owners[lib], allowed)
		}
		links, real, err := resolve(lib)
		if err != nil {
			return nil, err
		}
		for _, l := range append(links, File{Path: real, Source: real, Mode: 0o755}) {
			if !have[l.Path] {
				files = append(files, l)
				have[l.Path] = true
			}
		}
	}
	return files, nil
}

// resolve follows p's symbolic links, component by component, to the file
// it names: the links met on the way (as image entries) and the real path.
func resolve(p string) (links []File, real string, err error) {
	for hops := 0; hops < 40; hops++ {
		parts := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
		found := false
		for i := range parts {
			prefix := "/" + path.Join(parts[:i+1]...)
			fi, err := os.Lstat(prefix)
			if err != nil {
				return nil, "", err
			}
			if fi.Mode()&os.ModeSymlink == 0 {
				continue
			}
			target, err := os.Readlink(prefix)
			if err != nil {
				return nil, "", err
			}
			links = append(links, File{Path: prefix, Link: target})
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(prefix), target)
			}
			p = path.Join(append([]string{target}, parts[i+1:]...)...)
			found = true
			break
		}
		if !found {
			return links, p, nil
		}
	}
	return nil, "", fmt.Errorf("%s: too many symbolic links", p)
}
