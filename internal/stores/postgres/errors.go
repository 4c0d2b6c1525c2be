package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-dev/lethe/internal/stores"
)

// sqlStateNames names the SQLSTATEs a request most often meets.
var sqlStateNames = map[string]string{
	"22001": "value too long for the column",
	"22003": "numeric value out of range",
	"22P02": "invalid text representation for the column's type",
	"23502": "not-null violation",
	"23503": "foreign key violation",
	"23505": "unique violation",
	"23514": "check violation",
	"40001": "serialization failure",
	"40P01": "deadlock",
	"42501": "permission denied",
	"42703": "undefined column",
	"42P01": "undefined table",
	"55P03": "lock timeout",
	"57014": "statement timeout or cancellation",
}

// dbError turns a database error into one that is safe to log and to put in a
// status: what failed, the SQLSTATE and object names. PostgreSQL's messages and
// details can quote row data ("Key (email)=(...) already exists"), and pgx's
// encoding errors quote values, so neither is ever repeated. Errors retrying
// may fix wrap stores.ErrUnavailable; errors of the data or the map wrap
// stores.ErrInvalid.
func dbError(what string, err error) error {
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &pgErr):
		if pgErr.Code == "57014" {
			return fmt.Errorf("%w: %w: %s: %s", stores.ErrUnavailable, stores.ErrStatementTimeout, what, describe(pgErr))
		}
		if class := classify(pgErr.Code); class != nil {
			return fmt.Errorf("%w: %s: %s", class, what, describe(pgErr))
		}
		return fmt.Errorf("%s: %s", what, describe(pgErr))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &connErr), errors.As(err, &netErr), pgconn.Timeout(err):
		return fmt.Errorf("%w: %s: %v", stores.ErrUnavailable, what, err)
	default:
		return fmt.Errorf("%s: database error %T (its text is withheld: it may quote personal data)", what, err)
	}
}

// connectionEnded reports an error of a connection the server had ended
// (57P01 admin_shutdown: pg_terminate_backend, a fast shutdown, a restore
// dropping the database; 57P02 crash_shutdown) or that died before the
// statement was sent.
func connectionEnded(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "57P01" || pgErr.Code == "57P02"
	}
	return pgconn.SafeToRetry(err) || errors.Is(err, io.ErrUnexpectedEOF)
}

func classify(code string) error {
	switch {
	case code == "55P03", code == "57014", code == "40001", code == "40P01",
		strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"), strings.HasPrefix(code, "57P"):
		return stores.ErrUnavailable
	case strings.HasPrefix(code, "22"), strings.HasPrefix(code, "23"), strings.HasPrefix(code, "42"):
		return stores.ErrInvalid
	}
	return nil
}

func describe(e *pgconn.PgError) string {
	var b strings.Builder
	if name, ok := sqlStateNames[e.Code]; ok {
		b.WriteString(name + " ")
	}
	fmt.Fprintf(&b, "(SQLSTATE %s)", e.Code)
	if e.ConstraintName != "" {
		fmt.Fprintf(&b, " on constraint %q", e.ConstraintName)
	}
	if e.TableName != "" {
		fmt.Fprintf(&b, " of table %q", strings.TrimPrefix(e.SchemaName+"."+e.TableName, "."))
	}
	if e.ColumnName != "" {
		fmt.Fprintf(&b, " column %q", e.ColumnName)
	}
	return b.String()
}
