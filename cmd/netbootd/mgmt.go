package main

// The management listener's client side and checks: the token, and whether an address faces
// the boot network.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// mgmtTokenEnv holds the management API's bearer token when no file names it: the daemon
// requires it, the CLI sends it.
const mgmtTokenEnv = "NETBOOTD_MGMT_TOKEN"

// readToken is the management token: the file's content when a file is named (surrounding
// whitespace dropped), else $NETBOOTD_MGMT_TOKEN, else "" (no token).
func readToken(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv(mgmtTokenEnv)), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("management token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("management token: " + file + " is empty")
	}
	return tok, nil
}

// onBootNetwork says whether listen (host:port) takes connections from boot: every address, or
// one inside the boot interface's prefix.
func onBootNetwork(listen string, boot netip.Prefix) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false // New reports it
	}
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false // a name: cannot tell
	}
	return ip.IsUnspecified() || boot.Contains(ip.Unmap())
}
