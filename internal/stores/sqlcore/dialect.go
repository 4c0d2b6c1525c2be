package sqlcore

import (
	"strings"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
)

// Dialect is how one SQL database spells what the shared statements need:
// the masking expressions and placeholders (masking.Dialect), identifier
// quoting, and how keys and values are bound and compared. Its methods only
// render text and bind parameters; none runs a statement.
//
// Keys travel between statements as text, as KeyText renders them, and are
// bound back as their column's type by BindKey and KeyIn.
type Dialect interface {
	masking.Dialect
	// Quote quotes one identifier.
	Quote(name string) string
	// KeyText renders ref, a column like col, as the text its keys and
	// referenced values travel as.
	KeyText(col Column, ref string) string
	// BindKey binds one key KeyText read from col, as col's type.
	BindKey(col Column, key string, p *masking.Params) string
	// KeyIn selects the rows whose ref, a column like col, is one of keys
	// (at most Batching().Keys of them when that is bounded).
	KeyIn(col Column, ref string, keys []string, p *masking.Params) string
	// Match selects the rows whose ref, a column like col, equals one of
	// values exactly: identity values (from is masking.KindText), or values
	// KeyText read from a column of kind from. ok is false when no value can
	// match the column; the caller then has no condition, not a failing one.
	Match(col Column, ref string, values []string, from masking.Kind, p *masking.Params) (cond string, ok bool)
	// BindValue binds a value a rectification writes into col; the database
	// converts it, refusing (not truncating) a value that does not fit.
	BindValue(col Column, value string, p *masking.Params) string
	// Distinct is IS DISTINCT FROM for ref, a column like col, and value:
	// exact for text (a value differing only in case, accents or trailing
	// spaces is a change to write).
	Distinct(col Column, ref, value string) string
	// HexDigest tests that ref holds what the hash strategy writes: 64
	// lower-case hexadecimal digits.
	HexDigest(ref string) string
	// ExportColumn selects ref, a column like col, for an export: as itself,
	// or as text when the driver has no plain JSON form for its type.
	ExportColumn(col Column, ref string) string
	// Batching says how many keys one statement may bind.
	Batching() Batching
}

// Batching is how a dialect bounds the keys of one statement.
type Batching struct {
	// Keys bounds the keys or values one statement selects rows by; 0 when
	// any number fits (they are bound as one array).
	Keys int
	// HeldKeys bounds the held keys one sweep statement leaves out; a rule
	// holding more is swept by key. 0: any number.
	HeldKeys int
	// OrderChanges ends each DELETE and UPDATE by keys in ORDER BY pk LIMIT n
	// (MySQL): the optimizer then reads the key ranges instead of scanning the
	// table, which under READ COMMITTED would wait on the locks of rows
	// outside the batch (a row the application is writing, a row a sweep
	// skipped).
	OrderChanges bool
}

// SkipLockedChanger is a dialect that can lock a sweep range's rows,
// skipping the locked ones, and change them in one statement (PostgreSQL).
// Without it, a batch redone after a lock timeout picks the keys it can lock,
// then changes those by key.
type SkipLockedChanger interface {
	// SkipLockedChange renders the query that locks the rows of table (whose
	// key is pk) meeting where, skipping rows others have locked, deletes them
	// (set "") or sets set in them, and returns the number it changed.
	SkipLockedChange(table, pk, set, where string) string
}

// KeyOrderBounder is a dialect whose optimizer may read a sweep batch's
// rows in key order through the index on the rule's field and sort them
// all: MariaDB does, once a sweep has deleted part of a table, examining
// for each batch every expired row left (75,000 rows for a batch of 5000 in
// make bench), so that a run's work grows with the square of its rows.
// Forcing the key's own index instead would read, for a table whose expired
// rows are few or all behind the cursor, every fresh row after it. So the
// batch's last key is first looked for in key order through the key's
// index, examining at most a few batches' rows; when that finds none, the
// optimizer's plan looks.
type KeyOrderBounder interface {
	// BoundedKeyOrder renders, for the key column pk, the index hint that
	// follows the swept table's alias and the clause that follows LIMIT and
	// OFFSET to examine at most examined rows; ok is false when no index
	// covers the key alone.
	BoundedKeyOrder(pk Column, examined int) (hint, limit string, ok bool)
}

// StorageOrderer is a dialect that can sweep a table in the order its rows
// are stored (PostgreSQL: by ctid, with TID range scans), where the Table
// allows it. A delete rule's batch then reads its rows once, in storage
// order, as one DELETE of the whole table does, where a batch in key order
// reads them twice through the key's index: it finds the position of its
// BatchSize-th expired row, then deletes the expired rows stored after the
// previous batch's last row and up to that one. The rows a batch changes
// are exactly those of its range whatever order a plan reads them in; the
// look-up must read in storage order (in a SweepByPosition transaction) for
// the range to hold BatchSize expired rows. An anonymize rule stays in key
// order: an updated row is stored anew, possibly after the cursor, and
// would be met again.
type StorageOrderer interface {
	// PositionLookup renders the query returning, as text, the stored
	// position of the row after offset others among the rows of table
	// meeting where, in storage order; no row when there are fewer.
	PositionLookup(table, where string, offset int) string
	// PositionCond renders the condition that a row is stored after pos, or
	// (upTo) at or before it, binding pos in p.
	PositionCond(pos string, upTo bool, p *masking.Params) string
}

// LinkedSchema is a schema that knows which references the database itself
// links with a foreign key (MySQL).
type LinkedSchema interface {
	// Linked reports whether a foreign key links e's child field to its
	// parent field.
	Linked(e *datamap.Edge) bool
}

// LinkMatcher is a dialect whose foreign keys compare values otherwise than
// exactly (MySQL: by the columns' collation). A reference a foreign key links
// is followed by that comparison, so the rows found are the rows the database
// links; a reference only the data map declares is compared exactly (Match).
type LinkMatcher interface {
	MatchLinked(col Column, ref string, values []string, from masking.Kind, p *masking.Params) (cond string, ok bool)
}

// Column is a live column: what masking knows of it, and what a dialect
// needs to bind and compare its values.
type Column struct {
	masking.ColumnInfo
	// CastType is the type a value bound as text is cast to (PostgreSQL: the
	// column's type quoted, schema-qualified and without modifiers, so a cast
	// never truncates as varchar(8) would, nor means char(1) as "character"
	// does).
	CastType string
	// Charset is a text column's character set (MySQL: utf8mb4, latin1...),
	// which decides what can be compared in it without conversion.
	Charset string
	// Generated columns are computed from other columns and cannot be written.
	Generated bool
	// KeyIndex names a unique index on this column alone (MySQL: PRIMARY
	// when it is the primary key), for KeyOrderBounder; "" when none.
	KeyIndex string
}

// Schema is an engine's live schema, checked against the data map, as the
// shared statements look it up.
type Schema interface {
	// Column is c's live column name, looked up as the database resolves
	// names; the zero Column when there is none (a checked schema has every
	// column the map names).
	Column(c *datamap.Collection, name string) Column
	// Table is c's table, for the columns a retention rule names.
	Table(c *datamap.Collection) Table
}

// TableRef quotes a collection's table, schema-qualified or not.
func TableRef(d Dialect, c *datamap.Collection) string {
	parts := strings.Split(c.Table, ".")
	for i, p := range parts {
		parts[i] = d.Quote(p)
	}
	return strings.Join(parts, ".")
}

// KeyBatches splits keys into the lists one statement binds (one list when
// the dialect binds any number); none for no keys.
func KeyBatches(d Dialect, keys []string) [][]string {
	return batches(keys, d.Batching().Keys)
}

func batches(keys []string, size int) [][]string {
	if size <= 0 {
		size = len(keys)
	}
	var out [][]string
	for len(keys) > size {
		out = append(out, keys[:size])
		keys = keys[size:]
	}
	if len(keys) > 0 {
		out = append(out, keys)
	}
	return out
}
