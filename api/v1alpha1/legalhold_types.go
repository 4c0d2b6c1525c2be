package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HeldCollection names one collection of one DataStore.
type HeldCollection struct {
	// Store is the DataStore's name, in the same namespace.
	Store StoreName `json:"store"`
	// Collection in that DataStore. Empty: the whole store.
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_$]*$`
	Collection Identifier `json:"collection,omitempty"`
}

// LegalHoldSpec holds erasure and sweeps for a subject and/or collections.
// +kubebuilder:validation:XValidation:rule="has(self.subject) || (has(self.collections) && size(self.collections) > 0)",message="a legal hold needs a subject, collections, or both"
type LegalHoldSpec struct {
	// Reason for the hold (case number, authority); shown in the receipts of the requests it blocks.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Reason string `json:"reason"`

	// Subject whose data is held. With collections, only that subject's rows in them.
	// +optional
	Subject *Subject `json:"subject,omitempty"`

	// Collections held. Without a subject, every row in them.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Collections []HeldCollection `json:"collections,omitempty"`

	// ExpiresAt ends the hold by itself. Default: held until the LegalHold is deleted.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
}

// LegalHoldStatus is the observed state of a LegalHold.
type LegalHoldStatus struct {
	CommonStatus `json:",inline"`

	// Active is true while the hold is in force.
	// +optional
	Active bool `json:"active,omitempty"`

	// SubjectDigest is the keyed digest of the held subject's identities.
	// +optional
	SubjectDigest string `json:"subjectDigest,omitempty"`

	// BlockedRequests names the DataSubjectRequests waiting on this hold.
	// +optional
	// +listType=set
	BlockedRequests []string `json:"blockedRequests,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lhold,categories=lethe
// +kubebuilder:printcolumn:name="Active",type=boolean,JSONPath=`.status.active`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expiresAt`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// LegalHold suspends erasure and retention sweeps for a subject and/or
// collections, for example while a court case is open.
type LegalHold struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LegalHoldSpec   `json:"spec"`
	Status LegalHoldStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LegalHoldList is a list of LegalHolds.
type LegalHoldList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LegalHold `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LegalHold{}, &LegalHoldList{})
}
