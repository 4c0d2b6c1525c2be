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
// +kubebuilder:validation:XValidation:rule="!has(self.export) || self.type == 'Access'",message="export applies only to type Access"
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

	// Export says how long an Access export is kept and to whom it is
	// encrypted (only for type Access). Without it the export is kept 30 days,
	// in clear.
	// +optional
	Export *ExportSpec `json:"export,omitempty"`
}

// DefaultExportTTL is how long an Access export is kept when spec.export.ttl
// is not set: the month GDPR gives a controller to answer an access request.
const DefaultExportTTL Period = "30d"

// ExportSpec says how long an Access export is kept and to whom it is encrypted.
type ExportSpec struct {
	// TTL is how long the export Secret is kept once it is written, such as 7d
	// or 30d. When it has passed, Lethe deletes the Secret and
	// status.exportDeletedAt says when. Default 30d.
	// +optional
	TTL Period `json:"ttl,omitempty"`

	// Recipients are the requester's age public keys (age1..., or age1pq1...
	// for post-quantum keys). With recipients, the export Secret holds only
	// the export encrypted to them (key export.json.age), never the data in
	// clear; the requester decrypts it with `age -d -i key.txt`. A key that
	// cannot be parsed stops the request (InvalidExportRecipient) before
	// anything is read from the stores.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=set
	Recipients []AgeRecipient `json:"recipients,omitempty"`
}

// AgeRecipient is an age public key: age1... (X25519) or age1pq1... (hybrid
// post-quantum), as printed by age-keygen.
// +kubebuilder:validation:MinLength=62
// +kubebuilder:validation:MaxLength=2048
// +kubebuilder:validation:Pattern=`^age1(pq1)?[02-9ac-hj-np-z]+$`
type AgeRecipient string

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
	// RetainedUntil is when the last of the retained rows becomes erasable, if known.
	// +optional
	RetainedUntil *metav1.Time `json:"retainedUntil,omitempty"`
	// RetainedUntilEarliest is when the first of them does, when the rows end
	// their periods on different dates.
	// +optional
	RetainedUntilEarliest *metav1.Time `json:"retainedUntilEarliest,omitempty"`
	// Remaining is what checking the erasure found, after the store's part
	// committed: the subject's rows of this collection that the action would
	// still change (0: none is left). Absent when the store cannot be checked.
	// +optional
	Remaining *int64 `json:"remaining,omitempty"`
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
	// Reason is why the phase, as a CamelCase reason, where a message alone
	// would not do: SubjectTooLarge.
	// +optional
	Reason string `json:"reason,omitempty"`
	// StatementTimeouts counts the attempts in a row that met the store's
	// statement timeout (spec.statementTimeout of the DataStore).
	// +optional
	StatementTimeouts int32 `json:"statementTimeouts,omitempty"`
	// CompletionTime of this store's part.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// HeldBy names the LegalHolds that keep some of the subject's rows in this store.
	// +optional
	// +listType=atomic
	HeldBy []string `json:"heldBy,omitempty"`
	// Journaled is true when the counts were read back from the store's own
	// journal (a Lethe table written in the erasure's transaction): they are
	// exact after any crash or retry.
	// +optional
	Journaled bool `json:"journaled,omitempty"`
	// Verified is the check made after the store's part committed: the
	// subject was resolved again and nothing that should be erased was left
	// (each collection's remaining is 0). False: something was left, and the
	// part is done again. Absent when the store cannot be checked (processors).
	// +optional
	Verified *bool `json:"verified,omitempty"`
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

	// ExportSecretRef names the Secret (owned by the request) holding an Access
	// export: the only one (<name>-export), or the first part (<name>-export-0)
	// of an export split across exportParts.
	// +optional
	ExportSecretRef *SecretReference `json:"exportSecretRef,omitempty"`

	// ExportParts lists, in order, every Secret (owned by the request) holding
	// a piece of the Access export: the pieces' data, concatenated in this
	// order, is the export (JSON, or one age file when exportEncrypted).
	// +optional
	// +listType=atomic
	ExportParts []SecretReference `json:"exportParts,omitempty"`

	// ExportBytes is the size of the export (clear-text JSON) in bytes.
	// +optional
	ExportBytes int64 `json:"exportBytes,omitempty"`

	// ReceiptDigest is a SHA-256 of the canonical receipt (the outcomes, times and
	// subject digest), so a copy of the receipt kept elsewhere can be verified.
	// +optional
	ReceiptDigest string `json:"receiptDigest,omitempty"`

	// ExportEncrypted is true when the export is encrypted (age) to
	// spec.export.recipients: its Secret never held the data in clear.
	// +optional
	ExportEncrypted bool `json:"exportEncrypted,omitempty"`

	// ExportExpiresAt is when the export Secret is deleted: spec.export.ttl
	// after it was written.
	// +optional
	ExportExpiresAt *metav1.Time `json:"exportExpiresAt,omitempty"`

	// ExportDeletedAt is when Lethe deleted the export Secret, its TTL having passed.
	// +optional
	ExportDeletedAt *metav1.Time `json:"exportDeletedAt,omitempty"`

	// InputSecrets says what became of each Secret that handed personal data
	// to the request (the subject's identities, the rectified values) once it
	// was complete: Deleted, Kept (Lethe may not delete it: the message says
	// why), Waiting (another object still reads it) or Gone (deleted by
	// someone else first). Dry runs keep their Secrets.
	// +optional
	// +listType=map
	// +listMapKey=name
	InputSecrets []InputSecretOutcome `json:"inputSecrets,omitempty"`

	// IdentitiesDiscardAfter is when Lethe deletes the input Secrets: the
	// completion time plus the operator's --discard-identities-after window.
	// +optional
	IdentitiesDiscardAfter *metav1.Time `json:"identitiesDiscardAfter,omitempty"`

	// Replays records each time an erasure was re-applied to a store after a
	// restore from backup had undone it (its journal row was missing), oldest
	// first, at most 50. The receipt above (stores, receiptDigest) is the
	// original and never changes.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	Replays []Replay `json:"replays,omitempty"`

	// IdentitiesDiscardedAt is when the last input Secret was deleted: from
	// then on no Secret handed to this request holds the subject's identities.
	// Unset while one waits, and when one is kept or the identities are inline
	// in the spec (they stay until the request is deleted).
	// +optional
	IdentitiesDiscardedAt *metav1.Time `json:"identitiesDiscardedAt,omitempty"`
}

// Replay is one re-application of an erasure to a store.
type Replay struct {
	// Store is the DataStore the erasure was re-applied to.
	Store string `json:"store"`
	// Time of the replay.
	Time metav1.Time `json:"time"`
	// Reason: RestoreDetected (the store's journal had lost the request's
	// row), or OnLegalHold (continuing a replay that a hold had stopped).
	Reason string `json:"reason"`
	// Message says why, for humans (never personal data).
	// +optional
	Message string `json:"message,omitempty"`
	// Rows changed by the replay, in every collection.
	Rows int64 `json:"rows"`
	// Collections: per-collection outcome of the replay.
	// +optional
	// +listType=atomic
	Collections []CollectionOutcome `json:"collections,omitempty"`
	// HeldBy names the legal holds in force at the replay that kept rows;
	// those rows are erased at a later check, once the hold ends.
	// +optional
	// +listType=atomic
	HeldBy []string `json:"heldBy,omitempty"`
}

// ConsumeLabel, set to "true" on a Secret that hands identities or rectified
// values to a request, lets Lethe delete the Secret once the request is
// complete. Lethe never deletes a Secret without it, unless the Secret has an
// owner reference to the request.
const ConsumeLabel = "privacy.lethe.dev/consume"

// InputPurpose is what an input Secret handed to the request.
// +kubebuilder:validation:Enum=Subject;Rectification
type InputPurpose string

const (
	// InputSubject: the subject's identities (spec.subject.identitiesFrom).
	InputSubject InputPurpose = "Subject"
	// InputRectification: the corrected values (spec.rectification.valuesFrom).
	InputRectification InputPurpose = "Rectification"
)

// InputSecretState is what became of an input Secret.
// +kubebuilder:validation:Enum=Deleted;Kept;Waiting;Gone
type InputSecretState string

const (
	// InputDeleted: Lethe deleted the Secret.
	InputDeleted InputSecretState = "Deleted"
	// InputKept: Lethe may not delete the Secret (it has neither the
	// privacy.lethe.dev/consume=true label nor an owner reference to the
	// request) or it also serves a DataStore; it is left alone.
	InputKept InputSecretState = "Kept"
	// InputWaiting: another unfinished request or a LegalHold still reads the
	// Secret; Lethe deletes it once none does.
	InputWaiting InputSecretState = "Waiting"
	// InputGone: the Secret was deleted before Lethe did (by the last request
	// that read it, or by someone else).
	InputGone InputSecretState = "Gone"
)

// InputSecretOutcome is what became of one Secret that handed personal data to a request.
type InputSecretOutcome struct {
	// Name of the Secret, in the request's namespace.
	Name string `json:"name"`
	// Purpose: Subject (identities) or Rectification (corrected values).
	Purpose InputPurpose `json:"purpose"`
	// State of the Secret: Deleted, Kept, Waiting or Gone.
	State InputSecretState `json:"state"`
	// Message explains Kept and Waiting; never contains personal data.
	// +optional
	Message string `json:"message,omitempty"`
	// Time the state was reached.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
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
