package v1alpha1

// The unmapped-personal-data look of a SQL DataStore's check (docs/operations.md):
// at each check, the columns of mapped tables that no collection uses, and
// the columns of unmapped tables a foreign key links to a mapped one, are
// classified by name, type and table name (the classifier of kubectl lethe
// scaffold; no value is read), and those that look personal are reported by
// name in the UnmappedPersonalData condition. It is a warning: Ready does not
// depend on it. Redis, http and mongodb stores have no such condition.

// ConditionUnmappedPersonalData is True on a postgres or mysql DataStore
// while columns that look personal are not in its data map
// (PersonalDataUnmapped, the message names them), False when none is
// (NoUnmappedPersonalData), Unknown when the look failed
// (UnmappedCheckFailed).
const ConditionUnmappedPersonalData = "UnmappedPersonalData"

const (
	// ReasonPersonalDataUnmapped: columns that look personal are not in the
	// data map (a migration added them, or a linked table is not mapped); the
	// message lists table.column (guessed category), names only. Map them, or
	// list them in the privacy.lethe.dev/ignore-unmapped annotation.
	ReasonPersonalDataUnmapped = "PersonalDataUnmapped"
	// ReasonNoUnmappedPersonalData: no column outside the data map (of the
	// mapped tables and the tables linked to them) looks personal, or every
	// such column is ignored by the annotation.
	ReasonNoUnmappedPersonalData = "NoUnmappedPersonalData"
	// ReasonUnmappedCheckFailed: the catalog could not be read for the look
	// (the schema check itself succeeded); retried at the next check.
	ReasonUnmappedCheckFailed = "UnmappedCheckFailed"
)

// AnnotationIgnoreUnmapped, on a DataStore, lists the columns deliberately
// left out of its data map, so that UnmappedPersonalData does not report
// them: comma- or newline-separated globs (*, ?, [...], case-insensitive)
// matched against table.column or against the table alone, with tables
// named as the condition names them: "accounts.phone, audit.*, *.legacy_email,
// crm.notes". An invalid pattern ignores nothing and is named in the
// condition's message.
const AnnotationIgnoreUnmapped = "privacy.lethe.dev/ignore-unmapped"
