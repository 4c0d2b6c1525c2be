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
	// Field holding the timestamp the period runs from (created_at, closed_at).
	Field Identifier `json:"field"`
	// Period rows are kept for, such as 30d, 1y, 10y.
	Period Period `json:"period"`
}

// RetentionCondition is an extra structural condition on the rows a rule
// applies to. Raw SQL is never accepted.
// +kubebuilder:validation:XValidation:rule="has(self.isNull)",message="a where condition needs isNull"
type RetentionCondition struct {
	// Field the condition tests.
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
// Protection never decreases without saying why: an update that removes a rule
// (or moves it to another collection or field), narrows it with new where
// conditions, lengthens its period, turns delete into anonymize, turns on
// exemptFromErasure, points the policy at another store, or turns on suspend or
// dryRun is refused unless it also sets weakeningJustification to a new,
// non-empty text. Periods of different units are compared in hours with a month
// counted as 30 days and a year as 365 days, and a change to a calendar unit of
// the same approximate length (30d to 1mo, 365d to 1y) counts as lengthening:
// the comparison errs on the side of asking for a justification. Periods of the
// same unit are compared exactly.
// +kubebuilder:validation:XValidation:rule="oldSelf.rules.all(o, self.rules.exists(n, n.name == o.name && n.collection == o.collection && n.after.field == o.after.field)) || (has(self.weakeningJustification) && size(self.weakeningJustification) > 0 && (!has(oldSelf.weakeningJustification) || oldSelf.weakeningJustification != self.weakeningJustification))",message="removing a rule (or renaming it, or moving it to another collection or field) decreases protection: set spec.weakeningJustification to a new explanation to accept it"
// +kubebuilder:validation:XValidation:rule="oldSelf.rules.all(o, self.rules.all(n, n.name != o.name || n.after.period == o.after.period || !(n.after.period.find('[a-z]+$') == o.after.period.find('[a-z]+$') ? int(n.after.period.find('^[0-9]+')) > int(o.after.period.find('^[0-9]+')) : int(n.after.period.find('^[0-9]+')) * (n.after.period.endsWith('h') ? 1 : n.after.period.endsWith('d') ? 24 : n.after.period.endsWith('w') ? 168 : n.after.period.endsWith('mo') ? 720 : 8760) >= int(o.after.period.find('^[0-9]+')) * (o.after.period.endsWith('h') ? 1 : o.after.period.endsWith('d') ? 24 : o.after.period.endsWith('w') ? 168 : o.after.period.endsWith('mo') ? 720 : 8760)))) || (has(self.weakeningJustification) && size(self.weakeningJustification) > 0 && (!has(oldSelf.weakeningJustification) || oldSelf.weakeningJustification != self.weakeningJustification))",message="lengthening a retention period keeps data longer and decreases protection: set spec.weakeningJustification to a new explanation to accept it"
// +kubebuilder:validation:XValidation:rule="oldSelf.rules.all(o, self.rules.all(n, n.name != o.name || !((!has(o.action) || o.action == 'delete') && has(n.action) && n.action == 'anonymize'))) || (has(self.weakeningJustification) && size(self.weakeningJustification) > 0 && (!has(oldSelf.weakeningJustification) || oldSelf.weakeningJustification != self.weakeningJustification))",message="turning a rule's action from delete into anonymize keeps the rows and decreases protection: set spec.weakeningJustification to a new explanation to accept it"
// +kubebuilder:validation:XValidation:rule="oldSelf.rules.all(o, self.rules.all(n, n.name != o.name || !has(n.where) || n.where.all(w, has(o.where) && w in o.where))) || (has(self.weakeningJustification) && size(self.weakeningJustification) > 0 && (!has(oldSelf.weakeningJustification) || oldSelf.weakeningJustification != self.weakeningJustification))",message="adding where conditions to a rule narrows the rows it removes and decreases protection: set spec.weakeningJustification to a new explanation to accept it"
// +kubebuilder:validation:XValidation:rule="oldSelf.rules.all(o, self.rules.all(n, n.name != o.name || !(has(n.exemptFromErasure) && n.exemptFromErasure && !(has(o.exemptFromErasure) && o.exemptFromErasure)))) || (has(self.weakeningJustification) && size(self.weakeningJustification) > 0 && (!has(oldSelf.weakeningJustification) || oldSelf.weakeningJustification != self.weakeningJustification))",message="turning on exemptFromErasure makes erasure requests keep rows and decreases protection: set spec.weakeningJustification to a new explanation to accept it"
// +kubebuilder:validation:XValidation:rule="(self.storeRef == oldSelf.storeRef && !(has(self.suspend) && self.suspend && !(has(oldSelf.suspend) && oldSelf.suspend)) && !(has(self.dryRun) && self.dryRun && !(has(oldSelf.dryRun) && oldSelf.dryRun))) || (has(self.weakeningJustification) && size(self.weakeningJustification) > 0 && (!has(oldSelf.weakeningJustification) || oldSelf.weakeningJustification != self.weakeningJustification))",message="changing storeRef or turning on suspend or dryRun stops the policy's sweeps and decreases protection: set spec.weakeningJustification to a new explanation to accept it"
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
	// non-empty text; the controller records the change and this text in an Event.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	WeakeningJustification string `json:"weakeningJustification,omitempty"`
}

// RuleStatus is the state of one rule.
type RuleStatus struct {
	// Name of the rule.
	Name string `json:"name"`
	// RowsAffected in the last run (or, for a dry run, that would be).
	RowsAffected int64 `json:"rowsAffected"`
	// RowsPastPeriod still past their period after the last run: the compliance gap.
	RowsPastPeriod int64 `json:"rowsPastPeriod"`
	// RowsHeld skipped because of a legal hold.
	// +optional
	RowsHeld int64 `json:"rowsHeld,omitempty"`
	// Message explains held rows or a skipped rule, for humans.
	// +optional
	Message string `json:"message,omitempty"`
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
	// Completed rules of this run, with their results.
	// +optional
	// +listType=map
	// +listMapKey=name
	Completed []RuleStatus `json:"completed,omitempty"`
}

// AppliedRule is a rule as the controller last applied it.
type AppliedRule struct {
	Name              string          `json:"name"`
	Collection        string          `json:"collection"`
	Field             string          `json:"field"`
	Period            Period          `json:"period"`
	Action            RetentionAction `json:"action"`
	ExemptFromErasure bool            `json:"exemptFromErasure,omitempty"`
	// +optional
	// +listType=atomic
	Where []RetentionCondition `json:"where,omitempty"`
}

// AppliedPolicy is what the controller last applied. Comparing the spec with it,
// the controller records every accepted weakening as an Event.
type AppliedPolicy struct {
	StoreRef StoreName `json:"storeRef"`
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=name
	Rules []AppliedRule `json:"rules,omitempty"`
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
	// Applied is the policy as the controller last applied it.
	// +optional
	Applied *AppliedPolicy `json:"applied,omitempty"`
}

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
