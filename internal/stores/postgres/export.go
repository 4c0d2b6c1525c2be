package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Export returns the subject's rows of every collection in scope: the primary
// key and the mapped fields in scope, as JSON-friendly values (see jsonValue).
// Collections where the subject has no row are left out of the export.
func (s *Store) Export(ctx context.Context, req stores.Request) (stores.Export, stores.Result, error) {
	if err := sqlcore.ValidateSubject(s.m, req.Subject); err != nil {
		return nil, stores.Result{}, err
	}
	var exp stores.Export
	var res stores.Result
	err := s.inTxWithSchema(ctx, readOnly, func(tx pgx.Tx, live *liveSchema) error {
		rows, err := s.resolve(ctx, tx, live, req.Subject, false)
		if err != nil {
			return err
		}
		exp, res.Collections, err = sqlcore.Export(s.m, rows, req.Scope, func(c *datamap.Collection, keys []string) ([]map[string]any, error) {
			return exportRows(ctx, tx, live, c, keys, req.Scope)
		})
		return err
	})
	if err != nil {
		return nil, stores.Result{}, err
	}
	return exp, res, nil
}

func exportRows(ctx context.Context, tx pgx.Tx, live *liveSchema, c *datamap.Collection, keys []string, scope datamap.Scope) ([]map[string]any, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	columns := exportedColumns(live, c, scope)
	selects := make([]string, len(columns))
	for i, col := range columns {
		selects[i] = selectForJSON(col)
	}
	p := masking.NewParams(masking.Postgres)
	// ORDER BY names the table's column: the bare name may be a text output column.
	sql := fmt.Sprintf("SELECT %s FROM %s AS t WHERE %s ORDER BY t.%s", strings.Join(selects, ", "), tableRef(c), keyIn(live, c, keys, p), quote(c.PrimaryKey))
	rows, err := tx.Query(ctx, sql, p.Values()...)
	if err != nil {
		return nil, dbError(fmt.Sprintf("exporting collection %q", c.Name), err)
	}
	data, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (map[string]any, error) {
		values, err := row.Values()
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, len(columns))
		for i, col := range columns {
			out[col.Name] = jsonValue(col.Kind, values[i])
		}
		return out, nil
	})
	if err != nil {
		return nil, dbError(fmt.Sprintf("exporting collection %q", c.Name), err)
	}
	return data, nil
}

// exportedColumns are the primary key and the mapped fields in scope.
func exportedColumns(live *liveSchema, c *datamap.Collection, scope datamap.Scope) []column {
	columns := []column{live.column(c, c.PrimaryKey)}
	for _, f := range c.Fields {
		if f.Name != c.PrimaryKey && scope.Covers(f.Category) {
			columns = append(columns, live.column(c, f.Name))
		}
	}
	return columns
}

// selectForJSON reads types without a plain JSON form (numeric, uuid, json,
// network addresses...) as their PostgreSQL text, which loses nothing.
func selectForJSON(col column) string {
	switch col.Kind {
	case masking.KindText, masking.KindInteger, masking.KindFloat, masking.KindBoolean,
		masking.KindDate, masking.KindTimestamp, masking.KindTimestampTZ, masking.KindBytes:
		return quote(col.Name)
	}
	return "CAST(" + quote(col.Name) + " AS text)"
}

// jsonValue makes a scanned value JSON-friendly: dates as YYYY-MM-DD,
// timestamps as RFC 3339 (UTC for those without time zone), bytes in base64,
// non-finite floats and anything unusual as text.
func jsonValue(kind masking.Kind, v any) any {
	switch v := v.(type) {
	case nil, string, bool, int64:
		return v
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case float32:
		return jsonFloat(float64(v))
	case float64:
		return jsonFloat(v)
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	case time.Time:
		if kind == masking.KindDate {
			return v.Format(time.DateOnly)
		}
		return v.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

func jsonFloat(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return f
}
