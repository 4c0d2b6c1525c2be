package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Engine is the kind of data store.
// +kubebuilder:validation:Enum=postgres;mysql;redis;http;mongodb
type Engine string

const (
	EnginePostgres Engine = "postgres"
	EngineMySQL    Engine = "mysql"
	EngineRedis    Engine = "redis"
	EngineHTTP     Engine = "http"
	// EngineMongoDB is MongoDB or a MongoDB-wire server (FerretDB).
	EngineMongoDB Engine = "mongodb"
)

// ErasureAction is what an erasure request does to a subject's rows in a collection.
// +kubebuilder:validation:Enum=delete;anonymize;retain
type ErasureAction string

const (
	// ErasureDelete deletes the subject's rows.
	ErasureDelete ErasureAction = "delete"
	// ErasureAnonymize keeps the rows but masks every mapped field with its masking strategy.
	ErasureAnonymize ErasureAction = "anonymize"
	// ErasureRetain keeps the rows untouched, for the reason given; the receipt reports it.
	ErasureRetain ErasureAction = "retain"
)

// MaskingStrategy is how a field is anonymized. Each has one meaning in every engine.
// +kubebuilder:validation:Enum=nullify;redact;hash;partial;randomize;generalize;uniqueEmail
type MaskingStrategy string

const (
	// MaskNullify sets the field to NULL. Invalid on NOT NULL columns.
	MaskNullify MaskingStrategy = "nullify"
	// MaskRedact sets the field to a fixed value (default "[redacted]"). Invalid on UNIQUE columns.
	MaskRedact MaskingStrategy = "redact"
	// MaskHash replaces the field with a keyed HMAC-SHA256 digest (hex), so equal values
	// stay equal within a store (joins and counts still work) but cannot be reversed.
	MaskHash MaskingStrategy = "hash"
	// MaskPartial keeps the last keepLast characters and replaces the rest with '*'.
	MaskPartial MaskingStrategy = "partial"
	// MaskRandomize replaces the field with random data of the column's type.
	MaskRandomize MaskingStrategy = "randomize"
	// MaskGeneralize coarsens the value: dates to the first day of their month or year,
	// numbers to the lower bound of a range of width step.
	MaskGeneralize MaskingStrategy = "generalize"
	// MaskUniqueEmail replaces the field with a unique, email-shaped value
	// (erased-<key digest>@<domain>); the strategy for NOT NULL UNIQUE email columns.
	MaskUniqueEmail MaskingStrategy = "uniqueEmail"
)

// Masking says how one field is anonymized.
// +kubebuilder:validation:XValidation:rule="!has(self.value) || self.strategy == 'redact'",message="masking.value applies only to the redact strategy"
// +kubebuilder:validation:XValidation:rule="self.strategy != 'partial' || has(self.keepLast)",message="masking.keepLast is required for the partial strategy"
// +kubebuilder:validation:XValidation:rule="!has(self.keepLast) || self.strategy == 'partial'",message="masking.keepLast applies only to the partial strategy"
// +kubebuilder:validation:XValidation:rule="!has(self.granularity) || self.strategy == 'generalize'",message="masking.granularity applies only to the generalize strategy"
// +kubebuilder:validation:XValidation:rule="!has(self.step) || self.strategy == 'generalize'",message="masking.step applies only to the generalize strategy"
// +kubebuilder:validation:XValidation:rule="!has(self.domain) || self.strategy == 'uniqueEmail'",message="masking.domain applies only to the uniqueEmail strategy"
type Masking struct {
	// Strategy is the masking strategy.
	Strategy MaskingStrategy `json:"strategy"`

	// Value is the fixed replacement for redact. Default "[redacted]".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Value *string `json:"value,omitempty"`

	// KeepLast is how many trailing characters partial keeps.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=64
	KeepLast *int32 `json:"keepLast,omitempty"`

	// Granularity for dates and timestamps under generalize: month or year. Default month.
	// +optional
	// +kubebuilder:validation:Enum=month;year
	Granularity string `json:"granularity,omitempty"`

	// Step is the width of the ranges numbers are generalized to. Default 10.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Step *int64 `json:"step,omitempty"`

	// Domain of the addresses uniqueEmail produces. Default "erased.invalid".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Domain string `json:"domain,omitempty"`
}

// Identifier is a column or field name: for SQL, redis and http stores an
// identifier (letters, digits, underscores and $, not starting with a digit,
// at most 63 characters); for engine mongodb a document path (owner.userId,
// addresses[].line1: segments of letters, digits and underscores separated
// by dots, one of which may end in [] for the elements of an array; never a
// $). The schema admits both; DataStoreSpec's rules hold each engine to its
// own. Names of collections are always identifiers: their fields say so
// with their own markers. Quoting is done by Lethe, never by the user.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=255
// +kubebuilder:validation:Pattern=`^([A-Za-z_][A-Za-z0-9_$]{0,62}|[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})*(\[\](\.[A-Za-z_][A-Za-z0-9_]{0,62})*)?)$`
type Identifier string

// Field is one mapped column (or hash field) holding personal data.
type Field struct {
	// Name of the column (or, for redis, the hash field; for mongodb, a
	// document path such as profile.phone or addresses[].line1).
	Name Identifier `json:"name"`

	// Category of the data, dotted and hierarchical (user.contact.email).
	Category Category `json:"category"`

	// Masking applied when the collection is anonymized. Fields without masking are
	// left as they are by anonymization, which admission refuses for collections
	// whose onErasure is anonymize.
	// +optional
	Masking *Masking `json:"masking,omitempty"`
}

// Reference is an edge of the data map: this collection's field holds the value of
// another collection's field (usually its primary key). Erasure walks references
// from the identity collections to every child row of the subject.
type Reference struct {
	// Field of this collection that holds the reference (for mongodb, a
	// document path such as owner.accountId).
	Field Identifier `json:"field"`

	// Collection referred to, by its name in this DataStore.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_$]*$`
	Collection Identifier `json:"collection"`

	// CollectionField is the referred collection's field (for mongodb, a
	// document path outside arrays). Default: its primaryKey.
	// +optional
	CollectionField Identifier `json:"collectionField,omitempty"`

	// OnParentErasure says whose rows these are. cascade (default): rows referring
	// to a subject's row are the subject's too, and are erased as this collection
	// maps. setNull: they belong to someone else (a referral, a reply); only this
	// field is set to NULL when the parent row is erased (deleted, or anonymized
	// with every field in scope). Self-references must be setNull.
	// +optional
	// +kubebuilder:default=cascade
	OnParentErasure ParentErasure `json:"onParentErasure,omitempty"`
}

// ParentErasure is what erasing a parent row means for the rows that refer to it.
// +kubebuilder:validation:Enum=cascade;setNull
type ParentErasure string

const (
	// ParentCascade: referring rows belong to the same subject.
	ParentCascade ParentErasure = "cascade"
	// ParentSetNull: referring rows belong to others; the reference is cleared.
	ParentSetNull ParentErasure = "setNull"
)

// Collection is a table (postgres, mysql), a key pattern (redis) or an endpoint
// (http) holding personal data.
// +kubebuilder:validation:XValidation:rule="self.onErasure != 'retain' || (has(self.retainReason) && size(self.retainReason) > 0)",message="retainReason is required when onErasure is retain"
// +kubebuilder:validation:XValidation:rule="self.onErasure != 'anonymize' || (has(self.fields) && self.fields.exists(f, has(f.masking)))",message="onErasure anonymize needs at least one field with a masking strategy"
// +kubebuilder:validation:XValidation:rule="!has(self.references) || self.references.all(r, r.collection != self.name || r.onParentErasure == 'setNull')",message="a self-reference must use onParentErasure setNull: the referring rows belong to other subjects"
// +kubebuilder:validation:XValidation:rule="!has(self.erasureBatchSize) || self.onErasure == 'delete'",message="erasureBatchSize needs onErasure delete: batches delete rows"
type Collection struct {
	// Name of the collection, unique within the DataStore; used by references,
	// scopes, holds and retention rules. For SQL engines it is also the table name
	// unless table is set.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_$]*$`
	Name Identifier `json:"name"`

	// Table is the SQL table, optionally schema-qualified (billing.invoices).
	// Default: name.
	// +optional
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$`
	Table string `json:"table,omitempty"`

	// KeyPattern is the redis key pattern, with identity placeholders such as
	// session:{userId}:* (only for the redis engine). A * matches within one
	// segment: it never matches the character just before it (':' here), so
	// erasing user 4 never takes the keys of user "4:x".
	// +optional
	// +kubebuilder:validation:MaxLength=512
	KeyPattern string `json:"keyPattern,omitempty"`

	// HTTP describes how a third-party processor is asked to act on this
	// collection (only for the http engine).
	// +optional
	HTTP *HTTPCollection `json:"http,omitempty"`

	// PrimaryKey is the column that identifies a row (for mongodb, a document
	// path outside arrays; default _id). Erasure and sweeps act by primary key.
	// +optional
	PrimaryKey Identifier `json:"primaryKey,omitempty"`

	// Identity maps an identity type (email, userId) to the column holding it
	// (for mongodb, a document path: owner.userId, or members[].userId for
	// an identity in each element of an array).
	// A collection is reached either through an identity or through references.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z][A-Za-z0-9]{0,62}$'))",message="identity types must be camelCase names such as email or userId"
	Identity map[string]Identifier `json:"identity,omitempty"`

	// References from this collection's fields to other collections (child → parent).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	References []Reference `json:"references,omitempty"`

	// Fields holding personal data, with their category and masking.
	// +optional
	// +kubebuilder:validation:MaxItems=128
	// +listType=map
	// +listMapKey=name
	Fields []Field `json:"fields,omitempty"`

	// OnErasure is what an erasure request does to the subject's rows here.
	// +kubebuilder:default=delete
	OnErasure ErasureAction `json:"onErasure,omitempty"`

	// RetainReason explains why rows are retained (required for onErasure retain);
	// it is copied into every receipt.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	RetainReason string `json:"retainReason,omitempty"`

	// ErasureBatchSize opts this collection into batched erasure (SQL engines):
	// before the store's one transaction, the subject's rows here are deleted
	// in transactions of this many rows each, every batch recorded in the
	// journal, so a subject too large for one transaction within the statement
	// timeout is still erased. The trade-off: the erasure is no longer all or
	// nothing in this store; a failure part-way leaves these rows partly
	// deleted (the next attempt goes on from there). Only for onErasure delete,
	// on a collection nothing refers to or is found through, and only with the
	// journal; a legal hold covering the collection puts its rows back in the
	// one transaction.
	// +optional
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=1000000
	ErasureBatchSize int32 `json:"erasureBatchSize,omitempty"`
}

// ConnectionSpec says how to reach the store.
type ConnectionSpec struct {
	// SecretRef is the Secret key holding the connection string, in the
	// DataStore's namespace:
	//   - postgres: a URL (postgres://user:pass@host:5432/db?sslmode=verify-full)
	//     or keyword form (host=... dbname=... sslmode=verify-full);
	//   - mysql (MySQL, MariaDB): a go-sql-driver DSN
	//     (user:pass@tcp(host:3306)/db?tls=true), not a URL;
	//   - redis: redis://user:pass@host:6379/0 or rediss:// for TLS;
	//   - http: the processor's base URL (https://api.example.com/v1).
	// Only the parameters listed in docs/operations.md ("Connection strings per
	// engine") are accepted; the host must pass the manager's egress policy.
	SecretRef SecretKeySelector `json:"secretRef"`

	// HTTP holds credentials and signing settings of a processor (only for the http engine).
	// +optional
	HTTP *HTTPConnection `json:"http,omitempty"`
}

// DataStoreSpec describes one database or processor and where personal data lives in it.
// +kubebuilder:validation:XValidation:rule="self.collections.all(c, !has(c.references) || c.references.all(r, self.collections.exists(o, o.name == r.collection)))",message="a reference names a collection that is not in this DataStore"
// +kubebuilder:validation:XValidation:rule="!(self.engine in ['postgres', 'mysql']) || self.collections.all(c, has(c.primaryKey))",message="every SQL collection needs a primaryKey"
// +kubebuilder:validation:XValidation:rule="self.engine == 'redis' || self.collections.all(c, !has(c.keyPattern))",message="keyPattern applies only to the redis engine"
// +kubebuilder:validation:XValidation:rule="self.engine != 'redis' || self.collections.all(c, has(c.keyPattern))",message="every redis collection needs a keyPattern"
// +kubebuilder:validation:XValidation:rule="self.engine in ['postgres', 'mysql'] || self.collections.all(c, !has(c.table))",message="table applies only to SQL engines"
// +kubebuilder:validation:XValidation:rule="self.engine == 'http' || self.collections.all(c, !has(c.http))",message="http applies only to the http engine"
// +kubebuilder:validation:XValidation:rule="self.engine != 'http' || self.collections.all(c, has(c.http))",message="every http collection needs http request templates"
// +kubebuilder:validation:XValidation:rule="self.collections.exists(c, has(c.identity) && size(c.identity) > 0)",message="at least one collection must map an identity, or no subject can ever be found"
// +kubebuilder:validation:XValidation:rule="self.engine == 'mongodb' || self.collections.all(c, !has(c.primaryKey) || !(c.primaryKey.contains('.') || c.primaryKey.contains('[')))",messageExpression="'engine ' + self.engine + ': primaryKey must be a column name (letters, digits, _ and $, not starting with a digit); document paths such as owner.userId or addresses[].line1 are only for engine mongodb'"
// +kubebuilder:validation:XValidation:rule="self.engine == 'mongodb' || self.collections.all(c, !has(c.identity) || c.identity.all(k, !(c.identity[k].contains('.') || c.identity[k].contains('['))))",messageExpression="'engine ' + self.engine + ': identity values must be column names (letters, digits, _ and $, not starting with a digit); document paths such as owner.userId or addresses[].line1 are only for engine mongodb'"
// +kubebuilder:validation:XValidation:rule="self.engine == 'mongodb' || self.collections.all(c, !has(c.fields) || c.fields.all(f, !(f.name.contains('.') || f.name.contains('['))))",messageExpression="'engine ' + self.engine + ': fields[].name must be column names (letters, digits, _ and $, not starting with a digit); document paths such as owner.userId or addresses[].line1 are only for engine mongodb'"
// +kubebuilder:validation:XValidation:rule="self.engine == 'mongodb' || self.collections.all(c, !has(c.references) || c.references.all(r, !(r.field.contains('.') || r.field.contains('[')) && (!has(r.collectionField) || !(r.collectionField.contains('.') || r.collectionField.contains('[')))))",messageExpression="'engine ' + self.engine + ': references[].field and collectionField must be column names (letters, digits, _ and $, not starting with a digit); document paths such as owner.userId or addresses[].line1 are only for engine mongodb'"
// +kubebuilder:validation:XValidation:rule="self.engine != 'mongodb' || self.collections.all(c, (!has(c.primaryKey) || !(c.primaryKey.contains('$') || c.primaryKey.contains('['))) && (!has(c.identity) || c.identity.all(k, !c.identity[k].contains('$'))) && (!has(c.fields) || c.fields.all(f, !f.name.contains('$'))) && (!has(c.references) || c.references.all(r, !r.field.contains('$') && (!has(r.collectionField) || !(r.collectionField.contains('$') || r.collectionField.contains('['))))))",message="engine mongodb: primaryKey, identity, fields[].name and references[] paths are field names of letters, digits and _ separated by dots (owner.userId), one of which may end in [] for an array's elements (never primaryKey or collectionField); $ is refused: a path is never an operator"
type DataStoreSpec struct {
	// Engine of the store: postgres, mysql (also MariaDB), redis, http (a third-party processor) or mongodb.
	Engine Engine `json:"engine"`

	// Connection to the store.
	Connection ConnectionSpec `json:"connection"`

	// MaskingKeySecretRef is the key of the hash and uniqueEmail strategies. Keep it
	// secret and stable: the same value maps to the same digest only under the same key.
	// +optional
	MaskingKeySecretRef *SecretKeySelector `json:"maskingKeySecretRef,omitempty"`

	// Collections holding personal data: the data map.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Collections []Collection `json:"collections"`

	// CheckInterval is how often the live schema is checked against the data map. Default 5m, at least 30s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('30s')",message="checkInterval must be at least 30s"
	CheckInterval *metav1.Duration `json:"checkInterval,omitempty"`

	// StatementTimeout bounds every statement of a SQL store's transactions
	// (PostgreSQL statement_timeout, MariaDB max_statement_time). Default 1m.
	// A request whose part in this store meets it 3 times in a row is too
	// large for one transaction within it: the store's outcome fails with
	// reason SubjectTooLarge and the request stalls, rather than retrying
	// forever.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('1h')",message="statementTimeout must be between 100ms and 1h"
	StatementTimeout *metav1.Duration `json:"statementTimeout,omitempty"`

	// Journal is the table Lethe keeps in a SQL store to record what each
	// request changed, written in the request's own transaction (see
	// docs/concepts.md, "The journal"). It holds no personal data.
	// +optional
	Journal *JournalSpec `json:"journal,omitempty"`

	// BackupRetention is how long the store's backups are kept (e.g. 30d):
	// how long after an erasure completes a restore of an older backup may
	// bring the person back. For that long Lethe keeps the subject's
	// identities, encrypted, in the DataStore's forget list (Secrets
	// lethe-forget-<name>-0 to -f, owned by the DataStore), so that an erasure undone
	// by a restore is replayed; then it purges them. Unset (the default): no
	// replay data is kept, and a restore that undoes an erasure is only
	// reported (condition ErasuresReplayed, reason RestoreTooOld). SQL
	// engines only (postgres, mysql); see docs/backups.md.
	// +optional
	BackupRetention Period `json:"backupRetention,omitempty"`

	// WeakeningJustification explains a change that decreases protection. The
	// admission policy lethe-datastore-protection refuses such an update unless
	// it also sets this field to a new, non-empty text: removing a collection, a
	// field or an identity from the map; moving a collection to another table or
	// key pattern; onErasure delete to anonymize or retain, or anonymize to
	// retain; a masking strategy replaced by a weaker one (nullify > redact =
	// randomize > hash = uniqueEmail > partial > generalize > none), partial
	// keeping more characters, generalize coarsening less; a field's category
	// changed to one that is not a sub-category of it (requests scoped by
	// category would no longer reach it); a reference removed or turned from
	// cascade into setNull.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	WeakeningJustification string `json:"weakeningJustification,omitempty"`
}

// JournalSpec names or disables a SQL store's journal table.
type JournalSpec struct {
	// Table is the journal's table name. Default lethe_journal.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]{0,62}$`
	Table string `json:"table,omitempty"`
	// Schema (PostgreSQL) or database (MySQL) of the table; default the
	// connection's own (search_path, or the DSN's database).
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]{0,62}$`
	Schema string `json:"schema,omitempty"`
	// Disabled keeps no journal, for a store Lethe may not create tables in:
	// receipts then add up the counts of each pass as the manager saw them,
	// which a crash between the store's commit and the status write loses.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
}

// SchemaProblem is one difference between the data map and the live schema.
type SchemaProblem struct {
	// Collection concerned.
	Collection string `json:"collection"`
	// Field concerned, if any.
	// +optional
	Field string `json:"field,omitempty"`
	// Problem, for humans: what is wrong and how to fix it.
	Problem string `json:"problem"`
}

// DataStoreStatus is the observed state of a DataStore.
type DataStoreStatus struct {
	CommonStatus `json:",inline"`

	// LastCheckTime is when the connection and schema were last checked.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`

	// SchemaProblems lists every difference between the data map and the live schema.
	// +optional
	// +listType=atomic
	SchemaProblems []SchemaProblem `json:"schemaProblems,omitempty"`

	// Warnings the store works with but an operator should know about, such as a
	// foreign key from an unmapped table that would make erasure fail.
	// +optional
	// +listType=atomic
	Warnings []string `json:"warnings,omitempty"`

	// StoreIdentity is the database server instance last seen (SQL stores):
	// a change means a failover or a restore onto another instance.
	// +optional
	StoreIdentity *StoreIdentity `json:"storeIdentity,omitempty"`

	// Replay is the last comparison of the store's journal with the
	// completed erasures that touched it (SQL stores).
	// +optional
	Replay *ReplayStatus `json:"replay,omitempty"`

	// AcceptedWeakenings records, newest last (at most 20), each update the
	// admission policy lethe-datastore-protection accepted with a new
	// weakeningJustification: the generation and the justification given.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	AcceptedWeakenings []AcceptedWeakening `json:"acceptedWeakenings,omitempty"`
}

// StoreIdentity is which database server instance a store is. Nothing in it is personal data.
type StoreIdentity struct {
	// System is PostgreSQL's system_identifier, MySQL's server_uuid, or
	// mariadb:<server_id>@<hostname> on MariaDB (which has no server_uuid).
	System string `json:"system"`
	// Timeline is PostgreSQL's current timeline (it grows on each
	// point-in-time recovery or promotion); empty on other engines.
	// +optional
	Timeline string `json:"timeline,omitempty"`
	// Since is when Lethe first saw this identity.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}

// ReplayStatus is what the last replay check of a store found.
type ReplayStatus struct {
	// LastCheckTime is when the journal was last compared with the completed erasures.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`
	// ObservedCheckRequest is the value of the annotation
	// privacy.lethe.dev/replay-check that the last check saw: set the
	// annotation to a new value and wait for this field to show it.
	// +optional
	ObservedCheckRequest string `json:"observedCheckRequest,omitempty"`
	// Erasures is how many completed erasures touched the store (journaled parts).
	// +optional
	Erasures int32 `json:"erasures,omitempty"`
	// Replayed is how many erasures the last check re-applied.
	// +optional
	Replayed int32 `json:"replayed,omitempty"`
	// Pending names the requests whose journal row is missing and whose
	// replay is still to do (failed, or left for the next check).
	// +optional
	// +listType=atomic
	Pending []string `json:"pending,omitempty"`
	// Unreplayable names the requests whose journal row is missing from the
	// store but whose identities are no longer kept (completed before
	// spec.backupRetention, or while it was unset): a restore undid them and
	// Lethe cannot redo them. File new requests for those subjects.
	// +optional
	// +listType=atomic
	Unreplayable []string `json:"unreplayable,omitempty"`
	// ForgetListEntries is how many erasures' identities the forget list
	// keeps, encrypted, for replays.
	// +optional
	ForgetListEntries int32 `json:"forgetListEntries,omitempty"`
	// NextPurgeTime is when the oldest forget-list entry is purged.
	// +optional
	NextPurgeTime *metav1.Time `json:"nextPurgeTime,omitempty"`
}

// ReplayCheckAnnotation, set on a DataStore to a new value, asks for a
// replay check now (after a restore); status.replay.observedCheckRequest
// shows the value the last check saw.
const ReplayCheckAnnotation = "privacy.lethe.dev/replay-check"

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dstore,categories=lethe
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.spec.engine`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Checked",type=date,JSONPath=`.status.lastCheckTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// DataStore is one database or third-party processor and its data map: where
// personal data lives, in which categories, and what erasure does to it.
type DataStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DataStoreSpec   `json:"spec"`
	Status DataStoreStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// DataStoreList is a list of DataStores.
type DataStoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataStore `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DataStore{}, &DataStoreList{})
}
