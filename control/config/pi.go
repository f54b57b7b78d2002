package config

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// piSerial is how the Raspberry Pi 4/5 bootloader prefixes its TFTP requests by default
// (TFTP_PREFIX=0): the serial number as 8 lower-case hex digits and a slash, e.g. "9ffefdef/".
var piSerial = regexp.MustCompile(`^[0-9a-f]{8}$`)

func (c *Config) validatePiFolders(bad report) {
	serials := map[string]int{}
	for i := range c.Reservations {
		r := &c.Reservations[i]
		f := fmt.Sprintf("reservations[%d]", i)
		if r.PiSerial == "" {
			if r.TFTPFolder != "" {
				bad(r.Line, f+".tftp_folder", "only with pi_serial")
			}
			continue
		}
		if !piSerial.MatchString(r.PiSerial) {
			bad(r.Line, f+".pi_serial", "%q: want the 8 lower-case hex digits the bootloader asks under (vcgencmd otp_dump | grep ^28:)", r.PiSerial)
		} else if j, dup := serials[r.PiSerial]; dup {
			bad(r.Line, f+".pi_serial", "%s is also reservations[%d]", r.PiSerial, j)
		} else {
			serials[r.PiSerial] = i
		}
		if r.TFTPFolder != "" {
			clean := path.Clean(r.TFTPFolder)
			if path.IsAbs(r.TFTPFolder) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") ||
				strings.ContainsAny(r.TFTPFolder, "\\\x00") {
				bad(r.Line, f+".tftp_folder", "%q: want a folder inside tftp.root, as a relative path", r.TFTPFolder)
			}
		}
	}
}

// PiFolders maps each reserved Raspberry Pi's serial to the folder under the TFTP root its files
// come from.
func (c *Config) PiFolders() map[string]string {
	m := map[string]string{}
	for _, r := range c.Reservations {
		if r.PiSerial == "" {
			continue
		}
		folder := r.PiSerial
		if r.TFTPFolder != "" {
			folder = path.Clean(r.TFTPFolder)
		}
		m[r.PiSerial] = folder
	}
	return m
}
