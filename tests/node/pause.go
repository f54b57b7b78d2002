package node

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// busybox is Debian's busybox-static (scripts/deps.sh): the pod sandbox's only file.
const busybox = "/bin/busybox"

// pauseImage writes the pod sandbox image as an OCI archive and returns its path: static
// busybox sleeping until containerd kills the sandbox (it stops sandboxes with SIGKILL).
// registry.k8s.io/pause cannot be pulled here, and containerd's sandbox_image names this one.
func (n *Node) pauseImage(t testing.TB) string {
	t.Helper()
	bin, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatalf("%v (scripts/deps.sh installs busybox-static)", err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "busybox", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{}
	add := func(b []byte) map[string]any {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return map[string]any{"digest": d, "size": len(b)}
	}
	desc := func(mediaType string, b []byte) map[string]any {
		d := add(b)
		d["mediaType"] = mediaType
		return d
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	layerDesc := desc("application/vnd.oci.image.layer.v1.tar", layer.Bytes())
	config := mustJSON(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": []string{"/busybox", "sleep", "2147483647"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDesc["digest"].(string)}},
	})
	manifest := mustJSON(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc("application/vnd.oci.image.config.v1+json", config),
		"layers": []any{layerDesc},
	})
	md := desc("application/vnd.oci.image.manifest.v1+json", manifest)
	_, tag, _ := strings.Cut(PauseImage, ":")
	md["annotations"] = map[string]string{"io.containerd.image.name": PauseImage, "org.opencontainers.image.ref.name": tag}
	files := map[string][]byte{
		"oci-layout": []byte(`{"imageLayoutVersion": "1.0.0"}`),
		"index.json": mustJSON(map[string]any{"schemaVersion": 2, "manifests": []any{md}}),
	}
	for d, b := range blobs {
		files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] = b
	}
	var archive bytes.Buffer
	aw := tar.NewWriter(&archive)
	for p, b := range files {
		if err := aw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := aw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return n.write(t, filepath.Join("images", "pause.tar"), archive.String())
}
