package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RequestType is the kind of data-subject request.
// +kubebuilder:validation:Enum=Access;Erasure;Rectification
type RequestType string

const (
	// RequestAccess exports the subject's data to a Secret owned by the request.
	RequestAccess RequestType = "Access"
	// RequestErasure deletes or anonymizes the subject's data as each collection maps it.
	RequestErasure RequestType = "Erasure"
	// RequestRectification replaces the subject's values of the given categories.
	RequestRectification RequestType = "Rectification"
)

// RequestScope narrows the stores and categories a request acts on.
type RequestScope struct {
	// Stores names DataStores of the request's namespace. Empty: every DataStore
	// of the namespace (further narrowed by storeSelector).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Stores []StoreName `json:"stores,omitempty"`

	// StoreSelector selects DataStores of the request's namespace by label.
	// +optional
	StoreSelector *metav1.LabelSelector `json:"storeSelector,omitempty"`

	// Categories the request acts on; a category covers its sub-categories.
	// Empty: every category except customer.content, which is acted on only
	// when named here explicitly.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Categories []Category `json:"categories,omitempty"`
}

// Rectification carries the corrected values, keyed by category: every mapped
// field of that category in scope is set to the value.
// +kubebuilder:validation:XValidation:rule="has(self.values) != has(self.valuesFrom)",message="set exactly one of rectification.values and rectification.valuesFrom"
type Rectification struct {
	// Values maps a category (user.contact.email) to its corrected value.
	// Visible to anyone who can read the object; prefer valuesFrom.
	// +optional
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z][a-z0-9_]*(\\\\.[a-z][a-z0-9_]*)*$'))",message="rectification keys must be categories such as user.contact.email"
	Values map[string]string `json:"values,omitempty"`

	// ValuesFrom reads the values from a Secret of the same namespace; its keys are categories.
	// +optional
	ValuesFrom *SecretReference `json:"valuesFrom,omitempty"`
}

// DataSubjectRequestSpec is one request of one data subject. It is immutable:
// a running erasure cannot change its subject; a new request is a new object.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a DataSubjectRequest is immutable; create a new request instead"
// +kubebuilder:validation:XValidation:rule="self.type == 'Rectification' ? has(self.rectification) : !has(self.rectification)",message="rectification is required for, and only for, type Rectification"
type DataSubjectRequestSpec struct {
	// Type of the request: Access, Erasure or Rectification.
	Type RequestType `json:"type"`

	// Subject whose data the request is about.
	Subject Subject `json:"subject"`

	// Scope narrows the stores and categories. Default: every store of the
	// namespace, every category except customer.content.
	// +optional
	Scope RequestScope `json:"scope,omitempty"`

	// DryRun plans only: the status shows per-collection counts of what would
	// happen, and nothing is changed.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// Deadline is how long after creation the request must be complete, such as
	// 24h or 30d. Default from the operator's flags: 24h for Erasure, 30d otherwise.
	// +optional
	Deadline Period `json:"deadline,omitempty"`

	// Rectification carries the corrected values (only for type Rectification).
	// +optional
	Rectification *Rectification `json:"rectification,omitempty"`
}

// StorePhase is the progress of a request in one store.
type StorePhase string

const (
	StorePending     StorePhase = "Pending"
	StoreCompleted   StorePhase = "Completed"
	StoreFailed      StorePhase = "Failed"
	StoreOnLegalHold StorePhase = "OnLegalHold"
	// StoreRemoved: the DataStore was deleted, or left the request's scope,
	// before its part was done; nothing more is done there unless it returns.
	StoreRemoved StorePhase = "Removed"
)

// CollectionOutcome is what happened (or, for a dry run, would happen) in one collection.
type CollectionOutcome struct {
	// Collection name in the DataStore.
	Collection string `json:"collection"`
	// Action taken: delete, anonymize, rectify, export or retain.
	Action string `json:"action"`
	// Rows affected (or, for a dry run, that would be).
	Rows int64 `json:"rows"`
	// Reason for rows retained or skipped.
	// +optional
	Reason string `json:"reason,omitempty"`
	// RetainedUntil is when retained rows become erasable, if known.
	// +optional
	RetainedUntil *metav1.Time `json:"retainedUntil,omitempty"`
}

// StoreOutcome is the progress of a request in one DataStore.
type StoreOutcome struct {
	// Store is the DataStore's name.
	Store string `json:"store"`
	// Phase of the request in this store.
	Phase StorePhase `json:"phase"`
	// Message explains the phase; never contains personal data.
	// +optional
	Message string `json:"message,omitempty"`
	// Attempts made in this store.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// CompletionTime of this store's part.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Collections outcomes.
	// +optional
	// +listType=atomic
	Collections []CollectionOutcome `json:"collections,omitempty"`
}

// DataSubjectRequestStatus is the observed state and the receipt of a request.
type DataSubjectRequestStatus struct {
	CommonStatus `json:",inline"`

	// SubjectDigest is a keyed HMAC-SHA256 of the subject's identities: it lets an
	// auditor match requests of the same subject without revealing who it is.
	// +optional
	SubjectDigest string `json:"subjectDigest,omitempty"`

	// Deadline by which the request must be complete.
	// +optional
	Deadline *metav1.Time `json:"deadline,omitempty"`

	// StartTime is when work began.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// CompletionTime is when every store's part was complete.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// Stores: per-store progress and outcome.
	// +optional
	// +listType=map
	// +listMapKey=store
	Stores []StoreOutcome `json:"stores,omitempty"`

	// ExportSecretRef names the Secret (owned by the request) holding an Access export.
	// +optional
	ExportSecretRef *SecretReference `json:"exportSecretRef,omitempty"`

	// ReceiptDigest is a SHA-256 of the canonical receipt (the outcomes, times and
	// subject digest), so a copy of the receipt kept elsewhere can be verified.
	// +optional
	ReceiptDigest string `json:"receiptDigest,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dsr,categories=lethe
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="DryRun",type=boolean,JSONPath=`.spec.dryRun`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Deadline",type=string,JSONPath=`.status.deadline`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// DataSubjectRequest is one request of one data subject: access (export),
// erasure or rectification, carried out in every store in scope, with a receipt.
type DataSubjectRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DataSubjectRequestSpec   `json:"spec"`
	Status DataSubjectRequestStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// DataSubjectRequestList is a list of DataSubjectRequests.
type DataSubjectRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataSubjectRequest `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DataSubjectRequest{}, &DataSubjectRequestList{})
}
