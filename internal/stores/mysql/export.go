package mysql

import (
	"context"
	"database/sql"
	"encoding/base64"
	"strconv"

	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// ExportRows calls each with every row's values as the driver scans them,
// made JSON-friendly (see jsonValue).
func (t sqlTx) ExportRows(ctx context.Context, s sqlcore.Statement, kinds []masking.Kind, each func([]any) error) error {
	rows, err := t.tx.QueryContext(ctx, s.SQL, s.Args...)
	if err != nil {
		return err
	}
	return scanEach(rows, func(r *sql.Rows) error {
		values := make([]any, len(kinds))
		ptrs := make([]any, len(kinds))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			return err
		}
		for i := range values {
			values[i] = jsonValue(kinds[i], values[i])
		}
		return each(values)
	})
}

// jsonValue makes a value the driver scanned JSON-friendly: text as
// strings, binary in base64, floats by their shortest text, the rest as
// sqlcore.JSONValue does.
func jsonValue(kind masking.Kind, v any) any {
	switch v := v.(type) {
	case []byte:
		if kind == masking.KindBytes {
			return base64.StdEncoding.EncodeToString(v)
		}
		return string(v)
	case float32:
		// Through its shortest text, so 1.1 stays 1.1 rather than 1.100000023841858.
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
		return sqlcore.JSONValue(kind, f)
	}
	return sqlcore.JSONValue(kind, v)
}
