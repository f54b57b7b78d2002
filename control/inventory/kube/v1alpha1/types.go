package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Machine is one physical machine: its network interfaces (each a DHCP reservation), its host
// name and profile. Its metadata.labels are the labels that config groups' selectors match.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=nbm,categories=netbootd
// +kubebuilder:printcolumn:name="MAC",type=string,JSONPath=`.spec.interfaces[0].mac`
// +kubebuilder:printcolumn:name="IP",type=string,JSONPath=`.spec.interfaces[0].ipv4`
// +kubebuilder:printcolumn:name="PROFILE",type=string,JSONPath=`.spec.profile`
// +kubebuilder:printcolumn:name="PHASE",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="LAST-DHCP",type=date,JSONPath=`.status.lastDHCP`,priority=1
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type Machine struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MachineSpec   `json:"spec"`
	Status MachineStatus `json:"status,omitempty"`
}

// MachineSpec is what the operator declares about a machine.
type MachineSpec struct {
	// Interfaces are the machine's NICs that boot or get an address: each is one reservation.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Interfaces []Interface `json:"interfaces"`

	// Hostname is sent in DHCP option 12 and is the .Hostname of profile templates.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`
	// +optional
	Hostname string `json:"hostname,omitempty"`

	// Profile is the name of a Profile this machine boots; empty: the config's groups choose.
	// A Machine naming a Profile that netbootd does not see is rejected until the Profile exists.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Profile string `json:"profile,omitempty"`

	// Netboot allows network boot. False: an address from DHCP, but no boot file.
	// +kubebuilder:default=true
	// +optional
	Netboot *bool `json:"netboot,omitempty"`

	// DHCP overrides the subnet's DHCP options for this machine.
	// +optional
	DHCP *DHCPOptions `json:"dhcp,omitempty"`
}

// Interface is one NIC: its MAC and the IPv4 address reserved for it.
type Interface struct {
	// MAC is the Ethernet address, colon-separated: aa:bb:cc:dd:ee:ff.
	// +kubebuilder:validation:Pattern=`^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$`
	MAC string `json:"mac"`
	// IPv4 is the address reserved for this MAC; it must lie in one of netbootd's subnets.
	// +kubebuilder:validation:Pattern=`^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$`
	IPv4 string `json:"ipv4"`
}

// DHCPOptions are the per-machine DHCP options: a subset of netbootd's config options.
type DHCPOptions struct {
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	Router []IPv4 `json:"router,omitempty"`
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	DNS []IPv4 `json:"dns,omitempty"`
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	NTP []IPv4 `json:"ntp,omitempty"`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Domain string `json:"domain,omitempty"`
	// +kubebuilder:validation:Minimum=68
	// +kubebuilder:validation:Maximum=65535
	// +optional
	MTU int32 `json:"mtu,omitempty"`
}

// IPv4 is a dotted-quad IPv4 address.
// +kubebuilder:validation:Pattern=`^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$`
type IPv4 string

// MachineStatus is what netbootd observed; it writes it back, batched and rate-limited.
type MachineStatus struct {
	// Phase is the last boot phase seen: dhcp, tftp, script, kernel, initrd or booted.
	// +kubebuilder:validation:Enum=dhcp;tftp;script;kernel;initrd;booted
	// +optional
	Phase string `json:"phase,omitempty"`
	// PhaseTime is when Phase was reached.
	// +optional
	PhaseTime *metav1.Time `json:"phaseTime,omitempty"`
	// LastDHCP is the time of the last DHCP answer to one of the machine's interfaces.
	// +optional
	LastDHCP *metav1.Time `json:"lastDHCP,omitempty"`
	// Booted is when the machine last reported itself booted.
	// +optional
	Booted *metav1.Time `json:"booted,omitempty"`
	// MAC is the interface the last phase was seen on.
	// +optional
	MAC string `json:"mac,omitempty"`
}

// MachineList is a list of Machines.
//
// +kubebuilder:object:root=true
type MachineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Machine `json:"items"`
}

// Profile is what a machine boots: a kernel with initrds and arguments, or an iPXE script, and
// the configs the booted system fetches. Its metadata.name is the profile's name. Args, Script,
// UserData, MetaData and Ignition are Go templates, as in netbootd's config file.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=nbp,categories=netbootd
// +kubebuilder:printcolumn:name="KERNEL",type=string,JSONPath=`.spec.kernel`
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type Profile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ProfileSpec `json:"spec"`
}

// ProfileSpec mirrors a profile of netbootd's config file. Set kernel (with initrds and args)
// or script, not both.
// +kubebuilder:validation:XValidation:rule="has(self.kernel) != has(self.script)",message="set kernel (with initrds and args) or script, not both"
type ProfileSpec struct {
	// Kernel is an asset name (served under /assets/) or an http(s) URL.
	// +kubebuilder:validation:MinLength=1
	// +optional
	Kernel string `json:"kernel,omitempty"`
	// Initrds are asset names or URLs, loaded in order.
	// +listType=atomic
	// +optional
	Initrds []string `json:"initrds,omitempty"`
	// Args is the kernel command line (a template).
	// +optional
	Args string `json:"args,omitempty"`
	// Script is an iPXE script instead of kernel/initrds/args (a template).
	// +kubebuilder:validation:MinLength=1
	// +optional
	Script string `json:"script,omitempty"`
	// UserData is cloud-init user-data, served at /configs/MAC/user-data (a template).
	// +optional
	UserData string `json:"userData,omitempty"`
	// MetaData is cloud-init meta-data, served at /configs/MAC/meta-data (a template).
	// +optional
	MetaData string `json:"metaData,omitempty"`
	// Ignition is Ignition JSON, served at /configs/MAC/ignition (a template).
	// +optional
	Ignition string `json:"ignition,omitempty"`
}

// ProfileList is a list of Profiles.
//
// +kubebuilder:object:root=true
type ProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Profile `json:"items"`
}
