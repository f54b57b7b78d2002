//go:build integration

package tests

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// piConfig: a reserved Raspberry Pi 4 whose serial maps to its own folder in the TFTP root.
const piConfig = `
interface: {mode: authoritative}
tftp: {root: %s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
reservations:
  - {mac: "dc:a6:32:00:00:41", ip: 10.10.0.41, hostname: pi41, pi_serial: 9ffefdef, tftp_folder: pis/node41}
`

// piRRQ is a read request as the Pi 4 bootloader sends it (rpi-eeprom#74's capture):
// octet, tsize 0, blksize 1024.
func piRRQ(name string) []byte {
	b := binary.BigEndian.AppendUint16(nil, 1)
	for _, s := range []string{name, "octet", "tsize", "0", "blksize", "1024"} {
		b = append(append(b, s...), 0)
	}
	return b
}

// piProbe replays the Pi firmware's size probe from a new port: RRQ, OACK, ACK 0, DATA 1, then
// ERROR 0 "Early terminate" (raspberrypi/firmware#1700). It returns the tsize the OACK gave, or
// the server's ERROR message.
func piProbe(server, name string) (string, error) {
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return "", err
	}
	defer c.Close()
	srv := &net.UDPAddr{IP: net.ParseIP(server), Port: 69}
	if _, err := c.WriteToUDP(piRRQ(name), srv); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(patience))
	n, from, err := c.ReadFromUDP(buf)
	if err != nil {
		return "", err
	}
	p := buf[:n]
	switch op := binary.BigEndian.Uint16(p); op {
	case 5:
		return "", fmt.Errorf("server error %d: %s", binary.BigEndian.Uint16(p[2:]), strings.TrimRight(string(p[4:]), "\x00"))
	case 6:
	default:
		return "", fmt.Errorf("opcode %d, want OACK", op)
	}
	fields := strings.Split(strings.TrimRight(string(p[2:]), "\x00"), "\x00")
	tsize := ""
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == "tsize" {
			tsize = fields[i+1]
		}
	}
	if _, err := c.WriteToUDP([]byte{0, 4, 0, 0}, from); err != nil {
		return "", err
	}
	if n, _, err = c.ReadFromUDP(buf); err != nil || n < 4 || binary.BigEndian.Uint16(buf) != 3 {
		return "", fmt.Errorf("no DATA 1 after ACK 0: %v", err)
	}
	_, err = c.WriteToUDP(append([]byte{0, 5, 0, 0}, "Early terminate\x00"...), from)
	return tsize, err
}

// A client replaying the Raspberry Pi 4 bootloader against netbootd's TFTP: size probes that end
// with "Early terminate", then fetches (atftp with the Pi's options) of SERIAL/FILE: the Pi's own
// files from its folder, the shared firmware from the root. A Pi with no mapping and no folder
// gets "file not found" at once and finds start4.elf at the root, as its bootloader falls back.
// The probes are counted as probes, never as failed transfers.
func TestPiTFTPBootloaderSequence(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"start4.elf":             strings.Repeat("shared start4.elf ", 4000), // several 1024-byte blocks
		"fixup4.dat":             "shared fixup4.dat",
		"config.txt":             "shared config.txt",
		"pis/node41/config.txt":  "node41 config.txt",
		"pis/node41/cmdline.txt": "node41 cmdline.txt",
	}
	for name, body := range files {
		writeFile(t, filepath.Join(root, name), []byte(body))
	}
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(piConfig, root), "", goPath...)
	pi := r.client(t, "dc:a6:32:00:00:41")
	pi.Run(t, "ip", "addr", "add", "10.10.0.41/24", "dev", "eth0")
	out := t.TempDir()

	fetch := func(name string) (string, error) {
		local := filepath.Join(out, strings.ReplaceAll(name, "/", "_"))
		os.Remove(local)
		if o, err := pi.Exec("atftp", "--get", "-r", name, "-l", local, "--option", "tsize 0", "--option", "blksize 1024", "10.10.0.1"); err != nil {
			return "", fmt.Errorf("%v: %s", err, o)
		}
		b, err := os.ReadFile(local)
		return string(b), err
	}
	probe := func(name string) (string, error) {
		var tsize string
		err := pi.Do(t, func() error {
			var err error
			tsize, err = piProbe("10.10.0.1", name)
			return err
		})
		return tsize, err
	}

	// The mapped Pi: the bootloader's start4.elf, then the firmware's probes and loads.
	for _, step := range []struct{ name, want string }{
		{"9ffefdef/start4.elf", files["start4.elf"]},
		{"9ffefdef/config.txt", files["pis/node41/config.txt"]},
		{"9ffefdef/fixup4.dat", files["fixup4.dat"]},
		{"9ffefdef/cmdline.txt", files["pis/node41/cmdline.txt"]},
	} {
		tsize, err := probe(step.name)
		if err != nil || tsize != fmt.Sprint(len(step.want)) {
			t.Errorf("probe %s: tsize %q, %v; want %d", step.name, tsize, err, len(step.want))
		}
		if got, err := fetch(step.name); err != nil || got != step.want {
			t.Errorf("fetch %s: %d bytes, %v; want %q…", step.name, len(got), err, step.want[:min(len(step.want), 20)])
		}
	}
	// Files the firmware looks for and nobody has: "file not found", at once.
	if _, err := probe("9ffefdef/recover4.elf"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("probe of a missing file: %v, want file not found", err)
	}
	// An unmapped Pi: nothing under its serial, so its bootloader clears the prefix.
	if _, err := probe("0badc0de/start4.elf"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unmapped serial: %v, want file not found", err)
	}
	if got, err := fetch("start4.elf"); err != nil || got != files["start4.elf"] {
		t.Errorf("the root's start4.elf: %d bytes, %v", len(got), err)
	}

	waitUntil(t, "the probes counted", patience, func() bool { return d.metric("netbootd_tftp_size_probes_total") == 4 })
	if n := d.metric("netbootd_tftp_transfers_failed_total", `reason="client_error"`); n != 0 {
		t.Errorf("%v probes counted as failed transfers", n)
	}
	if n := d.metric("netbootd_tftp_transfers_completed_total"); n != 5 {
		t.Errorf("completed transfers %v, want the 5 fetches", n)
	}
	if strings.Contains(d.logs(), "reason=client_error") {
		t.Errorf("a probe was logged as a failed transfer")
	}

	// The Pi moves to another folder in the file; after a reload its files come from there.
	writeFile(t, filepath.Join(root, "pis/node42/cmdline.txt"), []byte("node42 cmdline.txt"))
	moved := strings.Replace(fmt.Sprintf(piConfig, root), "tftp_folder: pis/node41", "tftp_folder: pis/node42", 1)
	if err := os.WriteFile(d.configPath, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, "configuration reloaded")
	// The file watcher may also have reloaded a half-written file first: wait for the whole one.
	waitUntil(t, "the new folder served", patience, func() bool {
		got, err := fetch("9ffefdef/cmdline.txt")
		return err == nil && got == "node42 cmdline.txt"
	})
}
