//go:build tools

// Package tools pins the nfpm command `make deb` runs (go run), so that `go mod tidy` keeps it.
package tools

import _ "github.com/goreleaser/nfpm/v2/cmd/nfpm"
