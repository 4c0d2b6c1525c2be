package mysql

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// dialect is MySQL's and MariaDB's SQL: backtick quoting, keys bound one by
// one in batches (there is no array parameter), and text compared exactly
// whatever the collation (see match.go); mariaDB adds what only MariaDB has
// (LIMIT ROWS EXAMINED, see BoundedKeyOrder).
type dialect struct {
	masking.Dialect
	mariaDB bool
}

var mySQL = dialect{Dialect: masking.MySQL}

// Quote quotes one identifier.
func (dialect) Quote(name string) string { return quote(name) }

// quote quotes one identifier with backticks, doubling any backtick in it.
func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// tableRef quotes a collection's table, database-qualified or not.
func tableRef(c *datamap.Collection) string { return sqlcore.TableRef(mySQL, c) }

func (dialect) KeyText(col column, ref string) string { return textOf(col, ref) }

var _ sqlcore.KeyOrderBounder = dialect{}

// BoundedKeyOrder forces the key's own index, as pt-archiver does, with
// MariaDB's LIMIT ROWS EXAMINED bounding the read (see
// sqlcore.KeyOrderBounder). MySQL has no such bound: its optimizer chooses.
func (d dialect) BoundedKeyOrder(pk column, examined int) (hint, limit string, ok bool) {
	if !d.mariaDB || pk.KeyIndex == "" {
		return "", "", false
	}
	return " FORCE INDEX (" + quote(pk.KeyIndex) + ")", fmt.Sprintf(" ROWS EXAMINED %d", examined), true
}

func (dialect) BindKey(col column, key string, p *masking.Params) string {
	return keyParam(col, key, p)
}

func (dialect) KeyIn(col column, ref string, keys []string, p *masking.Params) string {
	return keyIn(col, ref, keys, p)
}

func (dialect) Match(col column, ref string, values []string, from masking.Kind, p *masking.Params) (string, bool) {
	return matchValues(col, ref, values, from == masking.KindBytes, p)
}

// MatchLinked follows a reference a foreign key links (sqlcore.LinkMatcher):
// InnoDB links a child row to the parent rows its value equals under the
// columns' collation (which a foreign key requires to be the same), so a text
// reference is compared by it: a child value 'ALICE@x.io' under
// utf8mb4_general_ci belongs to the parent 'alice@x.io', and deleting that
// parent without it would fail on the key, or cascade outside the plan.
func (dialect) MatchLinked(col column, ref string, values []string, from masking.Kind, p *masking.Params) (string, bool) {
	if col.Kind != masking.KindText || from != masking.KindText {
		return matchValues(col, ref, values, from == masking.KindBytes, p)
	}
	valid := slices.DeleteFunc(slices.Clone(values), func(v string) bool { return !utf8.ValidString(v) || !indexSafe(col.Charset, v) })
	return inList(ref, valid, p, func(v string, p *masking.Params) string { return p.Add(v) })
}

// BindValue binds the value as it is: MySQL converts it to the column's
// type, and the strict session refuses a value that does not fit rather than
// truncating it.
func (dialect) BindValue(_ column, value string, p *masking.Params) string { return p.Add(value) }

func (dialect) Distinct(col column, ref, value string) string { return distinct(col, ref, value) }

// HexDigest compares a binary string: REGEXP is then case-sensitive, so only
// lower-case hex passes.
func (dialect) HexDigest(ref string) string { return binaryText(ref) + " REGEXP '^[0-9a-f]{64}$'" }

// ExportColumn reads types without a plain JSON form (decimal, uuid, enum,
// set, time, json...) as their MySQL text, which loses nothing.
func (dialect) ExportColumn(col column, ref string) string {
	switch col.Kind {
	case masking.KindText, masking.KindInteger, masking.KindFloat, masking.KindDate,
		masking.KindTimestamp, masking.KindTimestampTZ, masking.KindBytes:
		return ref
	}
	return "CAST(" + ref + " AS CHAR CHARACTER SET utf8mb4)"
}

// Batching bounds the keys of a statement (keyChunk) and the held keys a
// sweep statement leaves out (maxInlineHeld), and orders changes by key.
func (dialect) Batching() sqlcore.Batching {
	return sqlcore.Batching{Keys: keyChunk, HeldKeys: maxInlineHeld, OrderChanges: true}
}

var _ sqlcore.JournalDialect = dialect{}

// CreateJournal creates the journal table with its request index.
func (dialect) CreateJournal(ref, _ string) []string {
	return []string{"CREATE TABLE IF NOT EXISTS " + ref + ` (
	id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
	request_uid VARCHAR(64) CHARACTER SET ascii NOT NULL,
	kind VARCHAR(32) CHARACTER SET ascii NOT NULL,
	results MEDIUMTEXT CHARACTER SET utf8mb4 NOT NULL,
	applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	KEY request_uid (request_uid)) ENGINE=InnoDB`}
}
