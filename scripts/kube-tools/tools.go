//go:build tools

// Package tools pins the commands the tests need, so that `go mod tidy` keeps what `go build`
// of each needs: kube-apiserver and helm (tests/kube, the chart's checks) and the parts of a
// real node (tests/node_test.go): kubelet, kube-controller-manager, kube-scheduler, kubectl.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
