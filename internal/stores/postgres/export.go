package postgres

import (
	"context"
	"encoding/base64"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// ExportRows calls each with every row's values as pgx decodes them, made
// JSON-friendly (see jsonValue).
func (t pgTx) ExportRows(ctx context.Context, s sqlcore.Statement, kinds []masking.Kind, each func([]any) error) error {
	rows, err := t.tx.Query(ctx, s.SQL, s.Args...)
	if err != nil {
		return err
	}
	_, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (struct{}, error) {
		values, err := row.Values()
		if err != nil {
			return struct{}{}, err
		}
		for i := range values {
			values[i] = jsonValue(kinds[i], values[i])
		}
		return struct{}{}, each(values)
	})
	return err
}

// jsonValue makes a value pgx decoded JSON-friendly: smaller integers and
// floats widened, bytes in base64, the rest as sqlcore.JSONValue does
// (timestamps without time zone in UTC).
func jsonValue(kind masking.Kind, v any) any {
	switch v := v.(type) {
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case float32:
		return sqlcore.JSONValue(kind, float64(v))
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	}
	return sqlcore.JSONValue(kind, v)
}
