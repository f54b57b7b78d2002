// Package v1alpha1 is the netbootd.io/v1alpha1 API: Machine (what the DHCP reservations are made
// of) and Profile (what a machine boots). `make generate` makes the CRDs under
// deploy/helm/netbootd/crds/ and zz_generated.deepcopy.go from these types with controller-gen;
// `make lint` checks that the committed ones are current.
//
// +kubebuilder:object:generate=true
// +groupName=netbootd.io
package v1alpha1
