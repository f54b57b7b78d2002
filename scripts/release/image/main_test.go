package main

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// fixture writes stand-ins for the two netbootd binaries, Debian's iPXE files and its license.
func fixture(t *testing.T, binary string) options {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, f := range ipxeFiles {
		write(f, "ipxe "+f)
	}
	grub := filepath.Join(dir, "arm64")
	for src := range grubARM64Files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(grub, src)), 0o755); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join("arm64", src), "grub "+src)
	}
	return options{name: "ghcr.io/netbootd/netbootd", version: "0.1.0-dev.g1d38ebd", commit: "1d38ebd",
		ipxeDir: dir, copyright: write("copyright", "GPL-2"), grubARM64: grub, epoch: time.Unix(1796481917, 0).UTC(),
		binaries: binaries{"linux/amd64": write("nb-amd64", binary+" amd64"), "linux/arm64": write("nb-arm64", binary+" arm64")}}
}

func TestImageReproducible(t *testing.T) {
	o := fixture(t, "netbootd")
	out1, out2 := filepath.Join(t.TempDir(), "image"), filepath.Join(t.TempDir(), "image")
	d1, err := build(o, out1)
	if err != nil {
		t.Fatal(err)
	}
	// Different modification times and a second later wall clock: only the inputs count.
	for _, p := range o.binaries {
		if err := os.Chtimes(p, time.Now().Add(time.Hour), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	d2, err := build(o, out2)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Fatalf("same inputs, two digests: %s, %s", d1, d2)
	}
	t1, _ := os.ReadFile(out1 + ".tar")
	t2, _ := os.ReadFile(out2 + ".tar")
	if len(t1) == 0 || !bytes.Equal(t1, t2) {
		t.Fatalf("the two archives differ (%d, %d bytes)", len(t1), len(t2))
	}
	// Another binary (another commit) is another digest.
	d3, err := build(fixture(t, "netbootd changed"), filepath.Join(t.TempDir(), "image"))
	if err != nil {
		t.Fatal(err)
	}
	if d3 == d1 {
		t.Fatalf("another binary, same digest %s", d1)
	}
}

func TestImageContents(t *testing.T) {
	o := fixture(t, "netbootd")
	out := filepath.Join(t.TempDir(), "image")
	if _, err := build(o, out); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, _ := top.IndexManifest()
	if len(tm.Manifests) != 1 || tm.Manifests[0].Annotations["io.containerd.image.name"] != "ghcr.io/netbootd/netbootd:0.1.0-dev.g1d38ebd" ||
		tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "0.1.0-dev.g1d38ebd" {
		t.Fatalf("layout index: %+v", tm.Manifests)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if string(im.MediaType) != "application/vnd.oci.image.index.v1+json" || len(im.Manifests) != 2 {
		t.Fatalf("index: %s with %d manifests", im.MediaType, len(im.Manifests))
	}
	for _, m := range im.Manifests {
		arch := m.Platform.Architecture
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != arch || cf.OS != "linux" || cf.Config.Entrypoint[0] != "/usr/bin/netbootd" || cf.Config.Labels["org.opencontainers.image.version"] != "0.1.0-dev.g1d38ebd" {
			t.Fatalf("%s config: %+v", arch, cf)
		}
		layers, _ := img.Layers()
		if len(layers) != 1 {
			t.Fatalf("%s: %d layers", arch, len(layers))
		}
		rc, _ := layers[0].Uncompressed()
		got := map[string]string{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(tr)
			if !h.ModTime.Equal(o.epoch) || h.Uid != 0 || h.Gid != 0 {
				t.Errorf("%s %s: mtime %v uid %d gid %d", arch, h.Name, h.ModTime, h.Uid, h.Gid)
			}
			got[h.Name] = string(data)
			if h.Name == "usr/bin/netbootd" && h.Mode != 0o755 {
				t.Errorf("netbootd mode %o", h.Mode)
			}
		}
		want := map[string]string{"usr/": "", "usr/bin/": "", "usr/bin/netbootd": "netbootd " + arch,
			"usr/lib/": "", "usr/lib/ipxe/": "", "usr/lib/ipxe/ipxe.efi": "ipxe ipxe.efi", "usr/lib/ipxe/snponly.efi": "ipxe snponly.efi",
			"usr/lib/ipxe/undionly.kpxe": "ipxe undionly.kpxe", "usr/share/": "", "usr/share/doc/": "", "usr/share/doc/ipxe/": "",
			"usr/share/doc/ipxe/copyright": "GPL-2",
			// arm64 GRUB, in every platform's image: the clients' architecture, not the node's.
			"usr/share/netbootd/": "", "usr/share/netbootd/arm64/": "", "usr/share/netbootd/arm64/grubnetaa64.efi": "grub grubnetaa64.efi",
			"usr/share/netbootd/arm64/grub/": "", "usr/share/netbootd/arm64/grub/arm64-efi/": "",
			"usr/share/netbootd/arm64/grub/arm64-efi/http.mod": "grub grub/arm64-efi/http.mod",
			"usr/share/netbootd/arm64/grubhttpaa64.efi":        "grub grubhttpaa64.efi",
			"usr/share/doc/grub-efi-arm64/":                    "", "usr/share/doc/grub-efi-arm64/copyright": "grub copyright.grub"}
		if len(got) != len(want) {
			t.Errorf("%s layer: %v, want %v", arch, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s layer %s = %q, want %q", arch, k, got[k], v)
			}
		}
	}
}

// The layout pushes to a registry as one index, as `crane push bin/image REPO:TAG` does, and the
// registry serves back the same digest (an in-memory registry: go-containerregistry's own).
func TestImagePushes(t *testing.T) {
	o := fixture(t, "netbootd")
	out := filepath.Join(t.TempDir(), "image")
	digest, err := build(o, out)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	top, _ := p.ImageIndex()
	tm, _ := top.IndexManifest()
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/netbootd/netbootd:" + o.version)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := pulled.Digest(); got != digest {
		t.Fatalf("pulled %s, built %s", got, digest)
	}
	im, _ := pulled.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("pulled index has %d manifests", len(im.Manifests))
	}
}

// The chart runs what `make image` names: its image.repository default is this builder's name,
// and its appVersion (the tag default) the VERSION file's release, which a tagged release's
// version is; its chart version follows appVersion.
func TestChartNamesThisImage(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	field := func(doc, key string) string {
		for _, line := range strings.Split(doc, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
				v, _, _ = strings.Cut(v, " #")
				return strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
		t.Fatalf("no %s:", key)
		return ""
	}
	release := strings.TrimSpace(read("VERSION"))
	chart := read("deploy/helm/netbootd/Chart.yaml")
	if got := field(chart, "appVersion"); got != release {
		t.Errorf("Chart.yaml appVersion %q, VERSION %q", got, release)
	}
	if got := field(chart, "version"); got != release {
		t.Errorf("Chart.yaml version %q, VERSION %q", got, release)
	}
	if got := field(read("deploy/helm/netbootd/values.yaml"), "repository"); got != defaultName {
		t.Errorf("values.yaml image.repository %q, make image names %q", got, defaultName)
	}
}
