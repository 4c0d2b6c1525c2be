package v1alpha1

// Annotations read by `kubectl lethe ropa`, the GDPR Art. 30(1) record of
// processing (docs/ropa.md). They declare what the data map cannot know:
// why data is processed, about whom, and who answers for it. Nothing reads
// them but the record; a missing one is printed as "not declared", never
// guessed.
//
// Values are plain text. For the list annotations (purpose, data-subjects,
// legal-basis, transfers, security-measures) each line, and each
// ';'-separated part of a line, is one item.
//
// Where they go, most specific first:
//   - purpose, data-subjects, legal-basis: on a DataStore, with the suffix
//     "." and a collection's name for that collection only
//     (privacy.lethe.dev/purpose.access_logs), or without it for every
//     collection of the store; else on the Namespace, for every store;
//   - controller-contact, dpo-contact, transfers, security-measures: on a
//     DataStore, for that store, else on the Namespace;
//   - recipient: on a DataStore of engine http, the processor's name (its
//     endpoint host is read from the connection Secret's URL).
const (
	// AnnotationPurpose: the purposes of the processing (Art. 30(1)(b)).
	AnnotationPurpose = "privacy.lethe.dev/purpose"
	// AnnotationDataSubjects: the categories of data subjects (Art. 30(1)(c)),
	// such as "customers; prospects".
	AnnotationDataSubjects = "privacy.lethe.dev/data-subjects"
	// AnnotationLegalBasis: the lawful basis of the processing (Art. 6(1)),
	// such as "contract (Art. 6(1)(b))". Retention legal bases come from the
	// RetentionPolicy rules, not from here.
	AnnotationLegalBasis = "privacy.lethe.dev/legal-basis"
	// AnnotationControllerContact: the name and contact details of the
	// controller (and of its representative, joint controller) (Art. 30(1)(a)).
	AnnotationControllerContact = "privacy.lethe.dev/controller-contact"
	// AnnotationDPOContact: the contact details of the data protection
	// officer (Art. 30(1)(a)).
	AnnotationDPOContact = "privacy.lethe.dev/dpo-contact"
	// AnnotationTransfers: transfers to third countries or international
	// organisations and their safeguards (Art. 30(1)(e)), or "none".
	AnnotationTransfers = "privacy.lethe.dev/transfers"
	// AnnotationSecurityMeasures: a general description of the technical and
	// organisational security measures (Art. 30(1)(g)).
	AnnotationSecurityMeasures = "privacy.lethe.dev/security-measures"
	// AnnotationRecipient: on a DataStore of engine http, who the processor
	// is (such as "Stripe Payments Europe Ltd., payment processor").
	AnnotationRecipient = "privacy.lethe.dev/recipient"
)
