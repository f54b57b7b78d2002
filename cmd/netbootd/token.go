package main

import (
	"errors"
	"fmt"
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
