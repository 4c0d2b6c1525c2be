package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HTTPMethod is the method of a request sent to a processor.
// +kubebuilder:validation:Enum=GET;POST;PUT;PATCH;DELETE
type HTTPMethod string

const (
	HTTPGet    HTTPMethod = "GET"
	HTTPPost   HTTPMethod = "POST"
	HTTPPut    HTTPMethod = "PUT"
	HTTPPatch  HTTPMethod = "PATCH"
	HTTPDelete HTTPMethod = "DELETE"
)

// DefaultSignatureHeader carries the request's signature when signingSecretRef is set.
const DefaultSignatureHeader = "X-Lethe-Signature"

// HTTPCollection describes the requests sent to a third-party processor for one
// collection: one request template per kind of data-subject request. A kind
// without a template is not propagated to the processor (Check reports an
// erasable collection without an erasure template).
//
// Placeholders: {identityType} (such as {customerId} or {email}) is replaced by
// the subject's identity of that type, which the collection must map in its
// identity. In a rectification body, {fields.name} is replaced by the corrected
// value of the mapped field name (by its category). Every template must use at
// least one identity placeholder, so no request can ever address all subjects.
// Write \{ for a literal brace.
// +kubebuilder:validation:XValidation:rule="has(self.access) || has(self.erasure) || has(self.rectification)",message="set at least one of access, erasure and rectification"
// +kubebuilder:validation:XValidation:rule="!has(self.access) || self.access.method in ['GET', 'POST']",message="the access request must be a GET or a POST"
type HTTPCollection struct {
	// Access fetches the subject's data. The JSON response is the export: an
	// object is one record, an array one record per element.
	// +optional
	Access *HTTPRequestTemplate `json:"access,omitempty"`

	// Erasure asks the processor to erase (or anonymize, as onErasure declares) the subject.
	// +optional
	Erasure *HTTPRequestTemplate `json:"erasure,omitempty"`

	// Rectification sends the corrected values. Object members whose value is
	// only a {fields.name} placeholder are left out when the request carries no
	// corrected value for that field; when it carries none at all, no request is sent.
	// +optional
	Rectification *HTTPRequestTemplate `json:"rectification,omitempty"`
}

// HTTPHeaderValue is the value of a static header: one line.
// +kubebuilder:validation:MaxLength=1024
// +kubebuilder:validation:Pattern=`^[^\r\n\x00]*$`
type HTTPHeaderValue string

// HTTPRequestTemplate is one request sent to a processor.
type HTTPRequestTemplate struct {
	// Method of the request.
	Method HTTPMethod `json:"method"`

	// Path, appended to the base URL of the connection Secret, with placeholders:
	// /v1/customers/{customerId}. Identities are percent-encoded (a / or .. in an
	// identity stays inside its path segment); a query string is allowed, and
	// placeholders in it are query-encoded.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^/\s#][^\s#]*$`
	Path string `json:"path"`

	// Headers sent as they are written: static, non-secret values such as an API
	// version. Credentials belong in the connection's authorizationSecretRef.
	// Authorization, Idempotency-Key, Content-Type and the hop-by-hop headers are set by Lethe.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[A-Za-z0-9!#$%&\\'*+.^_`|~-]{1,64}$'))",message="header names must be HTTP tokens of at most 64 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k.lowerAscii() in ['authorization', 'idempotency-key', 'content-type', 'content-length', 'host', 'connection', 'transfer-encoding', 'te', 'upgrade', 'trailer', 'keep-alive', 'proxy-authorization', 'x-lethe-timestamp']))",message="this header is set by Lethe"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k.lowerAscii() in ['metadata-flavor', 'metadata', 'x-aws-ec2-metadata-token', 'x-aws-ec2-metadata-token-ttl-seconds', 'x-google-metadata-request']))",message="cloud metadata headers are refused: a processor never needs them"
	Headers map[string]HTTPHeaderValue `json:"headers,omitempty"`

	// Body is a JSON document sent with Content-Type application/json (not with
	// GET). Placeholders may appear in string values (never in member names);
	// each is replaced by its value as a JSON string, so an identity can never
	// change the document's shape.
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Body *apiextensionsv1.JSON `json:"body,omitempty"`

	// SuccessStatuses are the response statuses that mean the processor acted.
	// Default: any 2xx.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=200
	// +kubebuilder:validation:items:Maximum=599
	// +listType=set
	SuccessStatuses []int32 `json:"successStatuses,omitempty"`

	// NotFoundMeansAbsent says a 404 means the processor holds nothing of the
	// subject: erasure is done already (0 rows), access exports nothing and
	// rectification changes nothing. When false a 404 is an error. Default true.
	// +optional
	NotFoundMeansAbsent *bool `json:"notFoundMeansAbsent,omitempty"`
}

// HTTPConnection holds a processor's credentials, signing and retry settings.
// The base URL comes from connection.secretRef.
// +kubebuilder:validation:XValidation:rule="!has(self.signatureHeader) || has(self.signingSecretRef)",message="signatureHeader applies only with signingSecretRef"
type HTTPConnection struct {
	// AuthorizationSecretRef is the Secret key whose value is sent verbatim as the
	// Authorization header, such as "Bearer sk_live_...".
	// +optional
	AuthorizationSecretRef *SecretKeySelector `json:"authorizationSecretRef,omitempty"`

	// SigningSecretRef is the Secret key of an HMAC-SHA256 key: every request then
	// carries signatureHeader: t=<unix seconds>,v1=<hex HMAC> over the timestamp,
	// method, path and query, Idempotency-Key and body hash (docs/processors.md),
	// so the processor can verify its origin and refuse replays.
	// +optional
	SigningSecretRef *SecretKeySelector `json:"signingSecretRef,omitempty"`

	// SignatureHeader is the header carrying the signature. Default X-Lethe-Signature.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][-A-Za-z0-9]*$`
	SignatureHeader string `json:"signatureHeader,omitempty"`

	// Timeout of one attempt, from connecting to reading the response. Default 10s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="timeout must be between 1s and 5m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// MaxAttempts per request, counting the first: 429, 5xx and network errors are
	// retried with exponential backoff, honouring Retry-After. When they run out the
	// request is retried later, on a later reconcile, with the same idempotency key. Default 4.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	MaxAttempts *int32 `json:"maxAttempts,omitempty"`
}
