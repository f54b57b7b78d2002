//go:build tools

// Package tools pins the two commands tests/kube needs, kube-apiserver and helm, so that
// `go mod tidy` keeps what `go build` of each needs.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
