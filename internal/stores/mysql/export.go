package mysql

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// Export returns the subject's rows of every collection in scope: the primary
// key and the mapped fields in scope, as JSON-friendly values (see jsonValue),
// keyed by their names in the data map. Collections where the subject has no
// row are left out of the export.
func (s *Store) Export(ctx context.Context, req stores.Request) (stores.Export, stores.Result, error) {
	if err := sqlcore.ValidateSubject(s.m, req.Subject); err != nil {
		return nil, stores.Result{}, err
	}
	var exp stores.Export
	var res stores.Result
	err := s.inTxWithSchema(ctx, readOnly, func(tx *sql.Tx, live *liveSchema) error {
		rows, err := finder{s: s, tx: tx, live: live}.resolve(ctx, req.Subject)
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

// exported is one exported column: its name in the map and its live column.
type exported struct {
	name string
	col  column
}

func exportRows(ctx context.Context, tx *sql.Tx, live *liveSchema, c *datamap.Collection, keys []string, scope datamap.Scope) ([]map[string]any, error) {
	columns := exportedColumns(live, c, scope)
	selects := make([]string, len(columns))
	for i, e := range columns {
		selects[i] = selectForJSON(e.col, quote(e.name))
	}
	pk := live.column(c, c.PrimaryKey)
	var data []map[string]any
	for _, chunk := range chunks(keys) {
		p := masking.NewParams(masking.MySQL)
		q := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s", strings.Join(selects, ", "), tableRef(c), keyIn(pk, quote(c.PrimaryKey), chunk, p), quote(c.PrimaryKey))
		rows, err := tx.QueryContext(ctx, q, p.Values()...)
		if err != nil {
			return nil, dbError(fmt.Sprintf("exporting collection %q", c.Name), err)
		}
		err = scanEach(rows, func(r *sql.Rows) error {
			values := make([]any, len(columns))
			ptrs := make([]any, len(columns))
			for i := range values {
				ptrs[i] = &values[i]
			}
			if err := r.Scan(ptrs...); err != nil {
				return err
			}
			row := make(map[string]any, len(columns))
			for i, e := range columns {
				row[e.name] = jsonValue(e.col.Kind, values[i])
			}
			data = append(data, row)
			return nil
		})
		if err != nil {
			return nil, dbError(fmt.Sprintf("exporting collection %q", c.Name), err)
		}
	}
	return data, nil
}

// exportedColumns are the primary key and the mapped fields in scope.
func exportedColumns(live *liveSchema, c *datamap.Collection, scope datamap.Scope) []exported {
	out := []exported{{c.PrimaryKey, live.column(c, c.PrimaryKey)}}
	for _, f := range c.Fields {
		if !strings.EqualFold(f.Name, c.PrimaryKey) && scope.Covers(f.Category) {
			out = append(out, exported{f.Name, live.column(c, f.Name)})
		}
	}
	return out
}

// selectForJSON reads types without a plain JSON form (decimal, uuid, enum,
// set, time, json...) as their MySQL text, which loses nothing.
func selectForJSON(col column, ref string) string {
	switch col.Kind {
	case masking.KindText, masking.KindInteger, masking.KindFloat, masking.KindDate,
		masking.KindTimestamp, masking.KindTimestampTZ, masking.KindBytes:
		return ref
	}
	return "CAST(" + ref + " AS CHAR CHARACTER SET utf8mb4)"
}

// jsonValue makes a scanned value JSON-friendly: text as strings, binary in
// base64, dates as YYYY-MM-DD, timestamps as RFC 3339 in UTC, non-finite
// floats as text.
func jsonValue(kind masking.Kind, v any) any {
	switch v := v.(type) {
	case nil, string, bool, int64, uint64:
		return v
	case []byte:
		if kind == masking.KindBytes {
			return base64.StdEncoding.EncodeToString(v)
		}
		return string(v)
	case float32:
		// Through its shortest text, so 1.1 stays 1.1 rather than 1.100000023841858.
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
		return jsonFloat(f)
	case float64:
		return jsonFloat(v)
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
