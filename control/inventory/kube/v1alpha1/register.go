package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is netbootd.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "netbootd.io", Version: "v1alpha1"}

// Resource names, as the API server serves them.
const (
	MachineResource = "machines"
	ProfileResource = "profiles"
)

// AddToScheme registers Machine, Profile and their lists (and the meta types the API server
// sends with them) in a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Machine{}, &MachineList{}, &Profile{}, &ProfileList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
