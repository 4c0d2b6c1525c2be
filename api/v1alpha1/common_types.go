package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types shared by every kind. They follow kstatus, so kubectl wait,
// Flux and Argo CD understand them without extra configuration.
const (
	// ConditionReady is True when the object is done (requests) or healthy (stores, policies, holds).
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller is still working towards Ready.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the controller cannot make progress without a change to the spec or the environment.
	ConditionStalled = "Stalled"
)

// Period is a human duration: a positive whole number followed by a unit,
// h (hours), d (days), w (weeks), mo (calendar months) or y (calendar years),
// for example 12h, 30d, 6mo, 10y. Months and years are calendar arithmetic, so
// 10y kept since 2016-02-29 ends on 2026-03-01, never a day early.
// +kubebuilder:validation:Pattern=`^[1-9][0-9]{0,5}(h|d|w|mo|y)$`
// +kubebuilder:validation:MaxLength=8
type Period string

// SecretKeySelector names one key of a Secret in the object's own namespace.
// There is deliberately no namespace field: an object only reads Secrets of its own namespace.
type SecretKeySelector struct {
	// Name of the Secret, in the same namespace as the object that refers to it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// Key within the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// SecretReference names a whole Secret in the object's own namespace.
type SecretReference struct {
	// Name of the Secret, in the same namespace as the object that refers to it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// Identities maps an identity type (email, userId, customerId, ...) to the
// subject's value of it. Values are matched exactly: no wildcard, no case folding.
// +kubebuilder:validation:MinProperties=1
// +kubebuilder:validation:MaxProperties=16
// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z][A-Za-z0-9]{0,62}$'))",message="identity types must be camelCase names such as email or userId"
// +kubebuilder:validation:XValidation:rule="self.all(k, self[k].matches('\\\\S'))",message="identity values must not be empty or only whitespace"
type Identities map[string]IdentityValue

// IdentityValue is one identity of a subject: personal data, matched exactly.
// +kubebuilder:validation:MaxLength=1024
type IdentityValue string

// Subject identifies one data subject, inline or (recommended) from a Secret,
// which keeps personal data out of Git and out of the object.
// +kubebuilder:validation:XValidation:rule="has(self.identities) != has(self.identitiesFrom)",message="set exactly one of subject.identities and subject.identitiesFrom"
type Subject struct {
	// Identities of the subject, inline. Visible to anyone who can read the object;
	// prefer identitiesFrom for real requests. Refused for Erasure requests by
	// default (admission policy lethe-inline-identities): inline identities would
	// stay in the request, in etcd and in Git, after the person is erased.
	// Operators can allow them (config/components/allow-inline-identities, or
	// the Helm value admission.allowInlineIdentities, leaves out the binding).
	// +optional
	Identities Identities `json:"identities,omitempty"`

	// IdentitiesFrom reads the identities from a Secret of the same namespace:
	// each data key is an identity type, each value the subject's identity.
	// Label the Secret privacy.lethe.dev/consume=true (or give it an owner
	// reference to the request) and Lethe deletes it once the request is
	// complete; status.inputSecrets says what became of it.
	// +optional
	IdentitiesFrom *IdentitiesSource `json:"identitiesFrom,omitempty"`
}

// IdentitiesSource is where a subject's identities are read from.
type IdentitiesSource struct {
	// SecretRef names the Secret whose keys are identity types.
	SecretRef SecretReference `json:"secretRef"`
}

// StoreName is the name of a DataStore in the same namespace.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
type StoreName string

// Category is a dotted, hierarchical data category such as user.contact.email;
// the scope user.contact covers it.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`
type Category string

// CategoryCustomerContent is the category of data customers own (their
// applications, databases and files). It is never touched unless a request
// names it explicitly in its scope.
const CategoryCustomerContent Category = "customer.content"

// CommonStatus is embedded in the status of every kind.
type CommonStatus struct {
	// ObservedGeneration is the generation of the spec the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling and Stalled (kstatus), and domain conditions.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// AcceptedWeakening is one update accepted with a justification.
type AcceptedWeakening struct {
	// Generation of the object the justification came with.
	Generation int64 `json:"generation"`
	// Justification as written in spec.weakeningJustification.
	Justification string `json:"justification"`
	// ObservedTime is when the controller first saw it.
	ObservedTime metav1.Time `json:"observedTime"`
}
