package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"

	"github.com/netbootd/netbootd/control/leader"
)

// LeaseLock keeps the pools' leader election record (control/leader) in a coordination.k8s.io/v1
// Lease, in client-go's fields (holderIdentity, leaseDurationSeconds, acquireTime, renewTime,
// leaseTransitions). It is written on netbootd's REST client because client-go's leaderelection
// package pulls in every Kubernetes API group (its scheme), which doubled netbootd's
// dependencies and CI build time.
type LeaseLock struct {
	client          rest.Interface
	namespace, name string
	last            leaseObject // as Get last read it: Update carries its resourceVersion
}

// leaseSpec is coordination.k8s.io/v1 LeaseSpec, the fields leader election uses.
type leaseSpec struct {
	HolderIdentity       *string `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32  `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *string `json:"acquireTime,omitempty"`
	RenewTime            *string `json:"renewTime,omitempty"`
	LeaseTransitions     *int32  `json:"leaseTransitions,omitempty"`
}

type leaseObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string `json:"name"`
		Namespace       string `json:"namespace"`
		ResourceVersion string `json:"resourceVersion,omitempty"`
	} `json:"metadata"`
	Spec leaseSpec `json:"spec"`
}

// microTime is metav1.MicroTime's wire format.
const microTime = "2006-01-02T15:04:05.000000Z07:00"

// NewLeaseLock is the Lease namespace/name on the cluster rc reaches.
func NewLeaseLock(rc *rest.Config, namespace, name string) (*LeaseLock, error) {
	if namespace == "" || name == "" {
		return nil, errors.New("the pools' lease needs a namespace and a name")
	}
	client, err := NewRESTClient(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	return &LeaseLock{client: client, namespace: namespace, name: name}, nil
}

func (l *LeaseLock) Describe() string { return l.namespace + "/" + l.name }

func (l *LeaseLock) collection() string {
	return "/apis/coordination.k8s.io/v1/namespaces/" + l.namespace + "/leases"
}

func (l *LeaseLock) path() string { return l.collection() + "/" + l.name }

// Get reads the Lease; leader.ErrNotFound when there is none.
func (l *LeaseLock) Get(ctx context.Context) (leader.Record, error) {
	raw, err := l.client.Get().AbsPath(l.path()).Do(ctx).Raw()
	if apierrors.IsNotFound(err) {
		return leader.Record{}, leader.ErrNotFound
	}
	if err != nil {
		return leader.Record{}, err
	}
	var o leaseObject
	if err := json.Unmarshal(raw, &o); err != nil {
		return leader.Record{}, fmt.Errorf("lease %s: %w", l.Describe(), err)
	}
	l.last = o
	s := o.Spec
	return leader.Record{Holder: deref(s.HolderIdentity), LeaseDuration: time.Duration(derefInt(s.LeaseDurationSeconds)) * time.Second,
		AcquireTime: parseMicro(s.AcquireTime), RenewTime: parseMicro(s.RenewTime), Transitions: derefInt(s.LeaseTransitions)}, nil
}

// Create writes the Lease; the API server refuses it when another instance created it first.
func (l *LeaseLock) Create(ctx context.Context, r leader.Record) error {
	var o leaseObject
	o.APIVersion, o.Kind = "coordination.k8s.io/v1", "Lease"
	o.Metadata.Name, o.Metadata.Namespace = l.name, l.namespace
	o.Spec = spec(r)
	body, _ := json.Marshal(o)
	_, err := l.client.Post().AbsPath(l.collection()).Body(body).Do(ctx).Raw()
	return err
}

// Update replaces the Lease Get last read, with its resourceVersion: the API server refuses it
// when someone else wrote the Lease since.
func (l *LeaseLock) Update(ctx context.Context, r leader.Record) error {
	o := l.last
	o.Spec = spec(r)
	body, _ := json.Marshal(o)
	_, err := l.client.Put().AbsPath(l.path()).Body(body).Do(ctx).Raw()
	return err
}

// spec is r in the Lease's fields; an empty holder or a zero time is written as none.
func spec(r leader.Record) leaseSpec {
	secs := int32((r.LeaseDuration + time.Second - 1) / time.Second)
	transitions := r.Transitions
	s := leaseSpec{LeaseDurationSeconds: &secs, AcquireTime: formatMicro(r.AcquireTime), RenewTime: formatMicro(r.RenewTime),
		LeaseTransitions: &transitions}
	if r.Holder != "" {
		s.HolderIdentity = &r.Holder
	}
	return s
}

func formatMicro(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(microTime)
	return &s
}

// parseMicro reads a MicroTime; a missing or unreadable one is the zero time.
func parseMicro(s *string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, deref(s))
	if err != nil {
		return time.Time{}
	}
	return t
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(i *int32) int32 {
	if i == nil {
		return 0
	}
	return *i
}
