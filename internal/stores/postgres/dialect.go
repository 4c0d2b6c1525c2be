package postgres

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// dialect is PostgreSQL's SQL. Keys are bound as one text array cast to the
// key's type, so any number fit one statement and the primary key index
// serves; text compares by the column's own equality (its collation).
type dialect struct{ masking.Dialect }

var pgSQL = dialect{masking.Postgres}

var _ sqlcore.SkipLockedChanger = dialect{}

var _ sqlcore.StorageOrderer = dialect{}

// PositionLookup finds the ctid in a SweepByPosition transaction, planned
// without index scans (see readInStorageOrder). Its WHERE restores them:
// an uncorrelated subquery there is a one-time filter, run once the
// statement is planned and before any row is read, whether or not a row is
// found. No ORDER BY: a plan sorting by ctid would read every row left.
func (dialect) PositionLookup(table, where string, offset int) string {
	return fmt.Sprintf("SELECT CAST(found.ctid AS text) FROM (SELECT swept.ctid FROM %s AS swept WHERE %s LIMIT 1 OFFSET %d) AS found "+
		"WHERE (SELECT set_config('enable_indexscan', current_setting('lethe.enable_indexscan'), true)) IS NOT NULL", table, where, offset)
}

// PositionCond bounds ctid, which a TID range scan reads in storage order.
func (dialect) PositionCond(pos string, upTo bool, p *masking.Params) string {
	op := " > "
	if upTo {
		op = " <= "
	}
	return "ctid" + op + "CAST(" + p.Add(pos) + " AS tid)"
}

// Quote quotes one identifier.
func (dialect) Quote(name string) string { return quote(name) }

// quote quotes one identifier.
func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// tableRef quotes a collection's table, schema-qualified or not.
func tableRef(c *datamap.Collection) string { return sqlcore.TableRef(pgSQL, c) }

func (dialect) KeyText(_ column, ref string) string { return "CAST(" + ref + " AS text)" }

func (dialect) BindKey(col column, key string, p *masking.Params) string {
	return fmt.Sprintf("CAST(%s AS %s)", p.Add(key), col.CastType)
}

func (dialect) KeyIn(col column, ref string, keys []string, p *masking.Params) string {
	return fmt.Sprintf("%s = ANY (CAST(CAST(%s AS text[]) AS %s[]))", ref, p.Add(keys), col.CastType)
}

// Match compares exactly by the column's equality. Integer columns compare
// with the values parsed in Go (an index still serves, and a value that is
// not a canonical integer matches nothing rather than failing the cast);
// other non-text columns compare as text.
func (dialect) Match(col column, ref string, values []string, _ masking.Kind, p *masking.Params) (string, bool) {
	var items []string
	exact := ""
	switch col.Kind {
	case masking.KindText:
		for _, v := range values {
			items = append(items, p.Add(v))
		}
		// The column's equality narrows by its index; citext and
		// non-deterministic collations then compare case- or
		// accent-insensitively, so the bytes are compared too.
		exact = bytewise(ref)
	case masking.KindInteger:
		for _, v := range values {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && strconv.FormatInt(n, 10) == v {
				items = append(items, p.Add(n))
			}
		}
	case masking.KindUUID:
		// Bound as uuid, so the index serves and any spelling PostgreSQL
		// reads as that uuid (upper case) finds it; other text matches nothing.
		for _, v := range values {
			if uuidText.MatchString(v) {
				items = append(items, "CAST("+p.Add(v)+" AS uuid)")
			}
		}
	default:
		ref = "CAST(" + ref + " AS text)"
		for _, v := range values {
			items = append(items, p.Add(v))
		}
	}
	var cond string
	switch len(items) {
	case 0:
		return "", false
	case 1:
		cond = ref + " = " + items[0]
		if exact != "" {
			cond += " AND " + exact + " = " + items[0]
		}
	default:
		list := "(" + strings.Join(items, ", ") + ")"
		cond = ref + " IN " + list
		if exact != "" {
			cond += " AND " + exact + " IN " + list
		}
	}
	return cond, true
}

// uuidText is a uuid as PostgreSQL reads it in its canonical layout, in either case.
var uuidText = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// bytewise is ref as text compared byte by byte (the "C" collation), whatever
// the column's type (citext) or collation.
func bytewise(ref string) string { return "CAST(" + ref + " AS text) COLLATE \"C\"" }

// refersTo selects the rows whose child column (col, referenced as ref) holds
// a value the subquery's parent column holds: by the column's equality, and
// for text byte-wise too, exactly as identities match.
func refersTo(col column, ref, parentRef, from string) string {
	cond := fmt.Sprintf("%s IN (SELECT %s FROM %s)", ref, parentRef, from)
	if col.Kind == masking.KindText {
		cond += fmt.Sprintf(" AND %s IN (SELECT %s FROM %s)", bytewise(ref), bytewise(parentRef), from)
	}
	return cond
}

// BindValue binds the value as text and casts it to the column's type;
// PostgreSQL refuses a value that does not fit (too long, not a date) rather
// than truncating it.
func (dialect) BindValue(col column, value string, p *masking.Params) string {
	return fmt.Sprintf("CAST(CAST(%s AS text) AS %s)", p.Add(value), col.CastType)
}

func (dialect) Distinct(_ column, ref, value string) string {
	return ref + " IS DISTINCT FROM " + value
}

func (dialect) HexDigest(ref string) string { return "CAST(" + ref + " AS text) ~ '^[0-9a-f]{64}$'" }

// ExportColumn reads types without a plain JSON form (numeric, uuid, json,
// network addresses...) as their PostgreSQL text, which loses nothing.
func (dialect) ExportColumn(col column, ref string) string {
	switch col.Kind {
	case masking.KindText, masking.KindInteger, masking.KindFloat, masking.KindBoolean,
		masking.KindDate, masking.KindTimestamp, masking.KindTimestampTZ, masking.KindBytes:
		return ref
	}
	return "CAST(" + ref + " AS text)"
}

// Batching: keys travel as one array parameter, any number of them.
func (dialect) Batching() sqlcore.Batching { return sqlcore.Batching{} }

// SkipLockedChange locks the range's rows in a subquery and changes them in
// the same statement, counting them with RETURNING.
func (dialect) SkipLockedChange(table, pk, set, where string) string {
	where = fmt.Sprintf("%[1]s = ANY (ARRAY(SELECT %[1]s FROM %[2]s WHERE %[3]s FOR UPDATE SKIP LOCKED))", pk, table, where)
	sql := "DELETE FROM " + table + " WHERE " + where
	if set != "" {
		sql = fmt.Sprintf("UPDATE %s SET %s WHERE %s", table, set, where)
	}
	return fmt.Sprintf("WITH changed AS (%s RETURNING 1) SELECT count(*) FROM changed", sql)
}

var _ sqlcore.JournalDialect = dialect{}

// CreateJournal creates the journal table and its request index.
func (dialect) CreateJournal(ref, name string) []string {
	return []string{
		"CREATE TABLE IF NOT EXISTS " + ref + ` (
	id bigserial PRIMARY KEY,
	request_uid text NOT NULL,
	kind text NOT NULL,
	results text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now())`,
		"CREATE INDEX IF NOT EXISTS " + quote(name+"_request_uid") + " ON " + ref + " (request_uid)",
	}
}
