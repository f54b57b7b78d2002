// Package v1alpha1 is the netbootd.io/v1alpha1 API: Machine (what the DHCP reservations are made
// of) and Profile (what a machine boots). The CRDs under deploy/helm/netbootd/crds/ are generated from these
// types; so is zz_generated.deepcopy.go:
//
//	go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0 object crd \
//	    paths=./control/inventory/kube/v1alpha1/... output:crd:dir=./deploy/helm/netbootd/crds
//
// +kubebuilder:object:generate=true
// +groupName=netbootd.io
package v1alpha1
