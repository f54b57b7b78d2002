package tftp

import (
	"os"
	"path/filepath"
	"strings"
)

// maxIPXEBinary bounds an iPXE binary read into memory; Debian's largest is under 2 MiB.
const maxIPXEBinary = 16 << 20

// ServeIPXE serves the iPXE binaries of dir (Debian's ipxe package: *.efi, *.kpxe, *.pxe) from
// memory, unless the root has a file of the same name: the operator's own build wins. It
// returns how many it serves; a missing dir serves none.
func (s *Server) ServeIPXE(dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !(strings.HasSuffix(name, ".efi") || strings.HasSuffix(name, ".kpxe") || strings.HasSuffix(name, ".pxe")) {
			continue
		}
		// Stat, not the entry's type: Debian's ipxe.efi is a symlink into /boot.
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || !st.Mode().IsRegular() {
			continue
		}
		if s.cfg.Root != "" {
			if _, err := os.Stat(filepath.Join(s.cfg.Root, name)); err == nil {
				continue
			}
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(data) > maxIPXEBinary {
			continue
		}
		s.AddFile(name, data)
		n++
	}
	return n
}
