// Command image builds netbootd's OCI image index (linux/amd64 and linux/arm64) with
// go-containerregistry, with no Docker daemon and no registry: `make image` runs it.
//
//	go run ./image -name ghcr.io/netbootd/netbootd -version 0.1.0 -epoch 1796481917 \
//	  -binary linux/amd64=bin/linux-amd64/netbootd -binary linux/arm64=bin/linux-arm64/netbootd \
//	  -ipxe /usr/lib/ipxe -grub-arm64 "$(bash scripts/arm64-fetch.sh)" -out bin/image
//
// It writes an OCI layout (-out) and the same layout as one tar file (-out + ".tar", what
// `ctr images import` and `skopeo copy oci-archive:` read). Each image holds the static netbootd,
// Debian's iPXE binaries and (with -grub-arm64) Debian's signed arm64 GRUB network image, nothing
// else: no shell, no libc. Every timestamp is -epoch (the
// commit's date) and entries are sorted, so one commit gives one digest.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The iPXE binaries netbootd serves by default (control/dhcpd/boot.go: BIOS undionly.kpxe, UEFI
// x86-64 ipxe.efi; snponly.efi for profiles that name it), from Debian's ipxe package
// (Architecture: all: x86 firmware binaries, the same whatever the node's architecture).
var ipxeFiles = []string{"ipxe.efi", "snponly.efi", "undionly.kpxe"}

// ipxeCopyright is the license of the iPXE binaries (GPL-2), shipped beside them.
const ipxeCopyright = "/usr/share/doc/ipxe/copyright"

// grubARM64Files are what arm64 UEFI machines boot by GRUB (docs/arm64.md), as
// scripts/arm64-fetch.sh lays them out, and where the image puts them: a directory shaped as a
// TFTP root (tftp.root). Client files, like the iPXE ones: every platform's image has them.
var grubARM64Files = map[string]string{
	"grubnetaa64.efi":         "usr/share/netbootd/arm64/grubnetaa64.efi",
	"grubhttpaa64.efi":        "usr/share/netbootd/arm64/grubhttpaa64.efi", // UEFI HTTP boot: GRUB with http built in
	"grub/arm64-efi/http.mod": "usr/share/netbootd/arm64/grub/arm64-efi/http.mod",
	"copyright.grub":          "usr/share/doc/grub-efi-arm64/copyright",
}

// defaultName is the image's repository, the Helm chart's image.repository default (the chart's
// tag default, its appVersion, is the VERSION file's release: tests check both).
const defaultName = "ghcr.io/netbootd/netbootd"

type binaries map[string]string // "linux/amd64" -> path of that platform's netbootd

func (b binaries) String() string { return fmt.Sprint(map[string]string(b)) }
func (b binaries) Set(s string) error {
	plat, path, ok := strings.Cut(s, "=")
	if !ok || !strings.HasPrefix(plat, "linux/") {
		return fmt.Errorf("-binary %q: want linux/ARCH=PATH", s)
	}
	b[plat] = path
	return nil
}

type options struct {
	name, version, commit, ipxeDir, copyright string
	grubARM64                                 string // scripts/arm64-fetch.sh's directory; "": no arm64 GRUB
	epoch                                     time.Time
	binaries                                  binaries
}

func main() {
	o := options{binaries: binaries{}}
	var out string
	var epoch int64
	flag.StringVar(&o.name, "name", defaultName, "image repository")
	flag.StringVar(&o.version, "version", "", "version: the image tag")
	flag.StringVar(&o.commit, "commit", "unknown", "commit, recorded as a label")
	flag.Int64Var(&epoch, "epoch", -1, "every timestamp, in seconds since 1970 (SOURCE_DATE_EPOCH)")
	flag.StringVar(&o.ipxeDir, "ipxe", "/usr/lib/ipxe", "directory of Debian's iPXE binaries")
	flag.StringVar(&o.copyright, "ipxe-copyright", ipxeCopyright, "iPXE's license file")
	flag.StringVar(&o.grubARM64, "grub-arm64", "", "directory scripts/arm64-fetch.sh prints: the arm64 GRUB network image, its http.mod and license")
	flag.Var(o.binaries, "binary", "PLATFORM=PATH of a static netbootd (repeat: linux/amd64, linux/arm64)")
	flag.StringVar(&out, "out", "bin/image", "OCI layout directory; the tar is OUT.tar")
	flag.Parse()
	if o.version == "" || epoch < 0 || len(o.binaries) == 0 {
		fmt.Fprintln(os.Stderr, "image: -version, -epoch and at least one -binary are required")
		os.Exit(2)
	}
	o.epoch = time.Unix(epoch, 0).UTC()
	digest, err := build(o, out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s:%s %s\n%s\n%s.tar\n", o.name, tag(o.version), digest, out, out)
}

// tag is the version as an OCI tag allows it ([A-Za-z0-9_][A-Za-z0-9_.-]*, no "+").
func tag(version string) string { return strings.ReplaceAll(version, "+", "-") }

// build writes the index as an OCI layout at out and as out.tar, and returns its digest.
func build(o options, out string) (v1.Hash, error) {
	idx, err := index(o)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := os.RemoveAll(out); err != nil {
		return v1.Hash{}, err
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	ref := o.name + ":" + tag(o.version)
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag(o.version), // skopeo, crane: oci:DIR:TAG
		"io.containerd.image.name":          ref,            // ctr images import
	})); err != nil {
		return v1.Hash{}, err
	}
	if err := tarDir(out, out+".tar", o.epoch); err != nil {
		return v1.Hash{}, err
	}
	return idx.Digest()
}

func index(o options) (v1.ImageIndex, error) {
	plats := make([]string, 0, len(o.binaries))
	for p := range o.binaries {
		plats = append(plats, p)
	}
	sort.Strings(plats)
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, plat := range plats {
		arch := strings.TrimPrefix(plat, "linux/")
		img, err := image(o, arch, o.binaries[plat])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", plat, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return idx, nil
}

func image(o options, arch, binary string) (v1.Image, error) {
	files := []file{{path: "usr/bin/netbootd", src: binary, mode: 0o755}}
	for _, f := range ipxeFiles {
		files = append(files, file{path: "usr/lib/ipxe/" + f, src: filepath.Join(o.ipxeDir, f), mode: 0o644})
	}
	files = append(files, file{path: "usr/share/doc/ipxe/copyright", src: o.copyright, mode: 0o644})
	if o.grubARM64 != "" {
		for src, dst := range grubARM64Files {
			files = append(files, file{path: dst, src: filepath.Join(o.grubARM64, src), mode: 0o644})
		}
	}
	layerTar, err := layerTar(files, o.epoch)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1),
		mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: o.epoch}, CreatedBy: "make image", Comment: "netbootd and iPXE"}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", arch, v1.Time{Time: o.epoch}
	cf.Config.Env = []string{"PATH=/usr/bin"}
	cf.Config.Entrypoint = []string{"/usr/bin/netbootd"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    "netbootd",
		"org.opencontainers.image.version":  o.version,
		"org.opencontainers.image.revision": o.commit,
		"org.opencontainers.image.created":  o.epoch.Format(time.RFC3339),
		"org.opencontainers.image.source":   "https://github.com/netbootd/netbootd",
		"org.opencontainers.image.licenses": "Apache-2.0 AND GPL-2.0-only",
	}
	if o.grubARM64 != "" {
		cf.Config.Labels["org.opencontainers.image.licenses"] += " AND GPL-3.0-or-later" // GRUB
	}
	return mutate.ConfigFile(img, cf)
}

type file struct {
	path, src string
	mode      int64
}

// layerTar is the layer's filesystem: parent directories first, sorted, root-owned, all at epoch.
func layerTar(files []file, epoch time.Time) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		var parents []string
		for d := filepath.Dir(f.path); d != "." && !dirs[d]; d = filepath.Dir(d) {
			parents = append([]string{d}, parents...)
			dirs[d] = true
		}
		for _, d := range parents {
			if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
		}
		data, err := os.ReadFile(f.src) // follows symlinks: Debian's ipxe.efi links to /boot
		if err != nil {
			return nil, err
		}
		if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.path, Mode: f.mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarDir writes the layout directory as one tar (an "oci-archive"), sorted, all at epoch.
func tarDir(dir, out string, epoch time.Time) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := tar.NewWriter(f)
	walkErr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error { // WalkDir is lexical
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			return w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	return errors.Join(walkErr, w.Close(), f.Close())
}
