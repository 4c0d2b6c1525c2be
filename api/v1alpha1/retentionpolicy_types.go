package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RetentionAction is what a sweep does to rows past their period.
// +kubebuilder:validation:Enum=delete;anonymize
type RetentionAction string

const (
	// RetentionDelete deletes expired rows.
	RetentionDelete RetentionAction = "delete"
	// RetentionAnonymize masks the mapped fields of expired rows with the DataStore's masking.
	RetentionAnonymize RetentionAction = "anonymize"
)

// RetentionAfter says when a row's period ends: period after the time in field.
type RetentionAfter struct {
	// Field holding the timestamp the period runs from (created_at, closed_at;
	// for engine mongodb a document path outside arrays, such as
	// meta.createdAt). The policy does not know its store's engine: admission
	// accepts a column name or a dotted path, and a run refuses a dotted path
	// on an engine other than mongodb (InvalidRule).
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^([A-Za-z_][A-Za-z0-9_$]{0,62}|[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})+)$`
	Field Identifier `json:"field"`
	// Period rows are kept for, such as 30d, 1y, 10y.
	Period Period `json:"period"`
}

// RetentionCondition is an extra structural condition on the rows a rule
// applies to. Raw SQL is never accepted.
// +kubebuilder:validation:XValidation:rule="has(self.isNull)",message="a where condition needs isNull"
type RetentionCondition struct {
	// Field the condition tests: a column name, or for engine mongodb a
	// document path outside arrays (meta.deletedAt), as after.field.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^([A-Za-z_][A-Za-z0-9_$]{0,62}|[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})+)$`
	Field Identifier `json:"field"`
	// IsNull: true selects rows where field IS NULL, false where it IS NOT NULL.
	// +optional
	IsNull *bool `json:"isNull,omitempty"`
}

// RetentionRule is one retention period on one collection.
// +kubebuilder:validation:XValidation:rule="!has(self.exemptFromErasure) || !self.exemptFromErasure || (has(self.legalBasis) && size(self.legalBasis) > 0)",message="legalBasis is required when exemptFromErasure is true"
type RetentionRule struct {
	// Name of the rule, unique within the policy.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Collection of the DataStore the rule applies to.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_$]*$`
	Collection Identifier `json:"collection"`

	// After says when a row's period ends.
	After RetentionAfter `json:"after"`

	// Where adds structural conditions, all of which must hold.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	Where []RetentionCondition `json:"where,omitempty"`

	// Action on rows past their period: delete or anonymize.
	// +kubebuilder:default=delete
	Action RetentionAction `json:"action,omitempty"`

	// LegalBasis for keeping the rows this long (e.g. "French Commercial Code L123-22").
	// +optional
	// +kubebuilder:validation:MaxLength=512
	LegalBasis string `json:"legalBasis,omitempty"`

	// ExemptFromErasure makes this a legal minimum: erasure requests keep these rows
	// while they are inside the period, and their receipts say so and until when.
	// +optional
	ExemptFromErasure bool `json:"exemptFromErasure,omitempty"`

	// BatchSize is the number of rows per batch transaction. Default 5000.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	BatchSize *int32 `json:"batchSize,omitempty"`

	// MaxRowsPerSecond limits the sweep's rate. Default: unlimited.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRowsPerSecond *int32 `json:"maxRowsPerSecond,omitempty"`
}

// RetentionPolicySpec schedules deletion or anonymisation of data past its period.
//
// Protection never decreases without saying why: the admission policy
// lethe-retentionpolicy-protection (config/admission, the one definition of
// "weaker", beside lethe-datastore-protection) refuses an update that removes a
// rule (or moves it to another collection or field), narrows it with new where
// conditions, lengthens its period, turns delete into anonymize, turns on
// exemptFromErasure, points the policy at another store, or turns on suspend or
// dryRun, unless it also sets weakeningJustification to a new, non-empty text.
// Periods of different units are compared in hours with a month counted as 30
// days and a year as 365 days, and a change to a calendar unit of the same
// approximate length (30d to 1mo, 365d to 1y) counts as lengthening: the
// comparison errs on the side of asking for a justification. Periods of the
// same unit are compared exactly.
type RetentionPolicySpec struct {
	// StoreRef names the DataStore, in the same namespace.
	StoreRef StoreName `json:"storeRef"`

	// Schedule in cron syntax (five fields, or @daily, @hourly, @every 1h).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every ([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+|(TZ=[A-Za-z_/+-]+ )?[0-9*,/?LW#A-Za-z-]+( [0-9*,/?LW#A-Za-z-]+){4})$')",message="schedule must be a five-field cron expression (\"0 3 * * *\") or a descriptor such as @daily or @every 1h"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('@every ') || duration(self.substring(7)) >= duration('1m')",message="schedule must not run more often than every minute"
	Schedule string `json:"schedule"`

	// Rules of the policy.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Rules []RetentionRule `json:"rules"`

	// Suspend stops scheduling new sweeps; a running sweep finishes its batch.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// DryRun counts the rows past their period without changing anything.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// WeakeningJustification explains a change that decreases protection (see
	// above). Such a change is accepted only if it also sets this field to a new,
	// non-empty text; the controller records it in status.acceptedWeakenings and
	// in a ProtectionWeakened Event.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	WeakeningJustification string `json:"weakeningJustification,omitempty"`
}

// RuleStatus is the state of one rule.
type RuleStatus struct {
	// Name of the rule.
	Name string `json:"name"`
	// RowsAffected in the last run (or, for a dry run, that would be): rows
	// deleted or anonymized by row batches, plus the rows of the partitions
	// dropped (partitions says whether those are estimates).
	RowsAffected int64 `json:"rowsAffected"`
	// RowsPastPeriod are the rows still past their period after the last run:
	// the compliance gap, counted in the database after the run whatever its
	// outcome. It includes the rows a failing rule could not remove, the rows
	// kept because of rows below them, and the held rows (rowsHeld). When the
	// count itself fails, the message says so and this is the last count.
	RowsPastPeriod int64 `json:"rowsPastPeriod"`
	// RowsHeld are the rows past their period kept because of a legal hold
	// (part of rowsPastPeriod).
	// +optional
	RowsHeld int64 `json:"rowsHeld,omitempty"`
	// RowsWithoutDate are rows whose period field is NULL (and that meet every
	// where condition): Lethe never acts on an unknown date, so they are not
	// past their period; they are counted so that they are seen.
	// +optional
	RowsWithoutDate int64 `json:"rowsWithoutDate,omitempty"`
	// CountedAt is when rowsPastPeriod, rowsHeld and rowsWithoutDate were
	// counted: the run's end, or an earlier run's when this run could not
	// count them (the message says why). Absent if they were never counted.
	// +optional
	CountedAt *metav1.Time `json:"countedAt,omitempty"`
	// Children is what the run did to the rows below the swept ones in the data
	// map, as erasure does (deleted, or their reference cleared: setNull), per
	// collection and action.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	Children []ChildRows `json:"children,omitempty"`
	// Kept are the rows past their period the run left because of rows below
	// them (a collection the map retains, a held or exempted row), per reason.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=21
	Kept []KeptRows `json:"kept,omitempty"`
	// Partitions dropped as a unit, and partitions wholly past the cutoff left
	// to row batches, for a store that sweeps partitions.
	// +optional
	Partitions *PartitionsStatus `json:"partitions,omitempty"`
	// Table is how much of the collection's table deleted rows still occupy
	// after the run, for a store that can tell (PostgreSQL: dead tuples until
	// VACUUM). Dropped partitions free their space at once.
	// +optional
	Table *TableHealthStatus `json:"table,omitempty"`
	// Message explains held rows, a skipped or failed rule, or a gap that could
	// not be counted, for humans.
	// +optional
	Message string `json:"message,omitempty"`
}

// ChildRows are the rows of one collection below the swept one that a run
// changed by one action.
type ChildRows struct {
	// Collection below the swept one.
	Collection string `json:"collection"`
	// Action done to them: delete, anonymize, or setNull (their reference to a
	// swept row cleared).
	Action string `json:"action"`
	// Rows changed.
	Rows int64 `json:"rows"`
}

// KeptRows are rows past their period left for one reason.
type KeptRows struct {
	// Reason names the collection below and why (the map retains it, a legal
	// hold, an erasure exemption); never a value.
	Reason string `json:"reason"`
	// Rows of the swept collection kept for it.
	Rows int64 `json:"rows"`
}

// MaxPartitionsListed bounds the partitions a rule's status names; the
// counts cover them all.
const MaxPartitionsListed = 20

// PartitionsStatus is what a rule's run did with whole partitions.
type PartitionsStatus struct {
	// DryRun: nothing was dropped; dropped lists what would be.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
	// Dropped partitions (the first 20; droppedCount counts them all).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	Dropped []PartitionOutcome `json:"dropped,omitempty"`
	// DroppedCount is the number of partitions dropped.
	// +optional
	DroppedCount int32 `json:"droppedCount,omitempty"`
	// DroppedRows are the rows of every dropped partition.
	// +optional
	DroppedRows int64 `json:"droppedRows,omitempty"`
	// DroppedRowsEstimated: some of those counts are the database's estimate,
	// not an exact count.
	// +optional
	DroppedRowsEstimated bool `json:"droppedRowsEstimated,omitempty"`
	// Kept partitions wholly past the cutoff that went through row batches
	// instead, with why (the first 20; keptCount counts them all).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	Kept []PartitionOutcome `json:"kept,omitempty"`
	// KeptCount is the number of partitions kept.
	// +optional
	KeptCount int32 `json:"keptCount,omitempty"`
}

// PartitionOutcome is one partition: its name (an identifier, never data),
// its rows, and whether that count is the database's estimate.
type PartitionOutcome struct {
	// Name of the partition's table.
	Name string `json:"name"`
	// Rows in the partition.
	Rows int64 `json:"rows"`
	// Estimated: rows is the database's estimate.
	// +optional
	Estimated bool `json:"estimated,omitempty"`
	// Reason the partition was kept, for humans.
	// +optional
	Reason string `json:"reason,omitempty"`
}

// TableHealthStatus is how much of a table deleted rows still occupy.
type TableHealthStatus struct {
	// DeadRows are deleted or updated row versions not reclaimed yet.
	DeadRows int64 `json:"deadRows"`
	// LastVacuum is the table's last (auto)vacuum; absent if never.
	// +optional
	LastVacuum *metav1.Time `json:"lastVacuum,omitempty"`
}

// SweepProgress is a sweep in progress. The controller works in bounded slices
// and saves its place here after each, so a restarted operator resumes the same
// run where it stopped.
type SweepProgress struct {
	// StartedAt is when the run started. Cutoffs are computed from it, so every
	// slice of the run (and a resumed run) sweeps the same rows.
	StartedAt metav1.Time `json:"startedAt"`
	// Rule being swept.
	Rule string `json:"rule"`
	// Cursor is the engine's opaque position in Rule: the sweep resumes after it.
	// +optional
	Cursor string `json:"cursor,omitempty"`
	// RowsAffected in Rule so far in this run.
	RowsAffected int64 `json:"rowsAffected"`
	// BatchesDone: Rule's batches are all done; what is left is counting.
	// +optional
	BatchesDone bool `json:"batchesDone,omitempty"`
	// Children of Rule's swept rows changed so far in this run.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	Children []ChildRows `json:"children,omitempty"`
	// Kept rows of Rule so far in this run, per reason.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=21
	Kept []KeptRows `json:"kept,omitempty"`
	// Partitions is what Rule's partition sweep did in this run, once it ran.
	// +optional
	Partitions *PartitionsStatus `json:"partitions,omitempty"`
	// Completed rules of this run, with their results.
	// +optional
	// +listType=map
	// +listMapKey=name
	Completed []RuleStatus `json:"completed,omitempty"`
}

// RetentionPolicyStatus is the observed state of a RetentionPolicy.
type RetentionPolicyStatus struct {
	CommonStatus `json:",inline"`

	// LastRunTime is when the last sweep started.
	// +optional
	LastRunTime *metav1.Time `json:"lastRunTime,omitempty"`
	// LastSuccessfulRunTime is when the last sweep that finished every rule started.
	// +optional
	LastSuccessfulRunTime *metav1.Time `json:"lastSuccessfulRunTime,omitempty"`
	// NextRunTime is when the next sweep is due.
	// +optional
	NextRunTime *metav1.Time `json:"nextRunTime,omitempty"`
	// Rules: per-rule results of the last run.
	// +optional
	// +listType=map
	// +listMapKey=name
	Rules []RuleStatus `json:"rules,omitempty"`
	// Sweep is the run in progress, if any.
	// +optional
	Sweep *SweepProgress `json:"sweep,omitempty"`
	// LastRunNowValue is the value of the privacy.lethe.dev/run-now annotation
	// the controller last started a run for (a value over 128 characters is
	// kept as its SHA-256): setting the annotation to any other value starts a
	// run at once, once.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	LastRunNowValue string `json:"lastRunNowValue,omitempty"`
	// AcceptedWeakenings records, newest last (at most 20), each update the
	// admission policy lethe-retentionpolicy-protection accepted with a new
	// weakeningJustification: the generation and the justification given.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	AcceptedWeakenings []AcceptedWeakening `json:"acceptedWeakenings,omitempty"`
}

// AnnotationRunNow starts a sweep at once when set to a value the policy has
// not run for yet (status.lastRunNowValue); once per value.
const AnnotationRunNow = "privacy.lethe.dev/run-now"

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rpol,categories=lethe
// +kubebuilder:printcolumn:name="Store",type=string,JSONPath=`.spec.storeRef`
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last run",type=date,JSONPath=`.status.lastRunTime`
// +kubebuilder:printcolumn:name="Next run",type=string,JSONPath=`.status.nextRunTime`

// RetentionPolicy deletes or anonymizes data past its retention period on a schedule.
type RetentionPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RetentionPolicySpec   `json:"spec"`
	Status RetentionPolicyStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// RetentionPolicyList is a list of RetentionPolicies.
type RetentionPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RetentionPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&RetentionPolicy{}, &RetentionPolicyList{})
}
