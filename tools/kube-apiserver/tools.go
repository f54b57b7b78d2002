//go:build tools

// Package tools pins k8s.io/kubernetes/cmd/kube-apiserver so that `go mod tidy` keeps the
// requirements that `go build k8s.io/kubernetes/cmd/kube-apiserver` needs.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
