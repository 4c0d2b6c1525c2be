package mysql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/lethe-dev/lethe/internal/stores"
)

// errorNames names the MySQL errors a request most often meets.
var errorNames = map[uint16]string{
	1048: "not-null violation",
	1054: "undefined column",
	1062: "unique violation",
	1142: "permission denied",
	1146: "undefined table",
	1205: "lock wait timeout",
	1213: "deadlock",
	1264: "numeric value out of range",
	1265: "value truncated for the column",
	1267: "illegal mix of collations",
	1292: "invalid value for the column's type",
	1366: "invalid value for the column's type",
	1406: "value too long for the column",
	1451: "foreign key violation",
	1452: "foreign key violation",
	1969: "statement timeout",
	3024: "statement timeout",
	3819: "check violation",
	4025: "check violation",
}

// unavailableErrors are the errors retrying may fix: timeouts, deadlocks,
// connection limits, a server going away.
var unavailableErrors = map[uint16]bool{
	1040: true, 1053: true, 1203: true, 1205: true, 1213: true, 1317: true, 1927: true, 1969: true, 3024: true,
}

// invalidErrors are errors of the data or the map (beyond SQLSTATE classes 22, 23 and 42).
var invalidErrors = map[uint16]bool{1265: true, 1267: true, 1292: true, 1364: true, 1366: true}

// objectPatterns pull object names (never values) out of the messages of the
// errors that name them. Each applies to its own errors only and is anchored
// where the server puts the name, after any quoted value, so a value cannot
// forge one; names must still look like identifiers.
var objectPatterns = []struct {
	errors []uint16
	label  string
	re     *regexp.Regexp
}{
	{[]uint16{1451, 1452}, "constraint", regexp.MustCompile("CONSTRAINT `([^`]+)` FOREIGN KEY \\(")},
	{[]uint16{1451, 1452}, "table", regexp.MustCompile("a foreign key constraint fails \\(`[^`]*`\\.`([^`]+)`, CONSTRAINT")},
	{[]uint16{4025}, "constraint", regexp.MustCompile("^CONSTRAINT `([^`]+)` failed for ")},
	{[]uint16{3819}, "constraint", regexp.MustCompile(`^Check constraint '([^']+)' is violated\.$`)},
	{[]uint16{1062}, "key", regexp.MustCompile(`for key '([^']+)'$`)},
	{[]uint16{1048}, "column", regexp.MustCompile(`^Column '([^']+)' cannot be null$`)},
	{[]uint16{1264, 1265, 1292, 1366, 1406}, "column", regexp.MustCompile("for column (?:`[^`']*`\\.)*[`']([^`']+)[`'] at row [0-9]+$")},
	{[]uint16{1054}, "column", regexp.MustCompile(`^Unknown column '([^']+)' in '[a-z ]+'$`)},
	{[]uint16{1146}, "table", regexp.MustCompile(`^Table '([^']+)' doesn't exist$`)},
}

var objectName = regexp.MustCompile(`^[A-Za-z0-9_$.]{1,192}$`)

// dbError turns a database error into one that is safe to log and to put in a
// status: what failed, the error number, SQLSTATE and object names. MySQL
// messages can quote row data ("Duplicate entry 'a_b@x.io' for key 'email'",
// "Incorrect integer value: '...'"), and database/sql's conversion errors
// quote values, so neither is ever repeated. Errors retrying may fix wrap
// stores.ErrUnavailable; errors of the data or the map wrap stores.ErrInvalid.
func dbError(what string, err error) error {
	var myErr *gomysql.MySQLError
	var netErr net.Error
	switch {
	case errors.As(err, &myErr):
		if myErr.Number == 1969 || myErr.Number == 3024 { // MariaDB max_statement_time, MySQL max_execution_time
			return fmt.Errorf("%w: %w: %s: %s", stores.ErrUnavailable, stores.ErrStatementTimeout, what, describe(myErr))
		}
		if class := classify(myErr); class != nil {
			return fmt.Errorf("%w: %s: %s", class, what, describe(myErr))
		}
		return fmt.Errorf("%s: %s", what, describe(myErr))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, gomysql.ErrInvalidConn), errors.As(err, &netErr):
		// Network errors name the address dialled: the tenant's DSN.
		return fmt.Errorf("%w: %s: %s", stores.ErrUnavailable, what, describeUnavailable(err))
	default:
		return fmt.Errorf("%s: database error %T (its text is withheld: it may quote personal data)", what, err)
	}
}

func classify(e *gomysql.MySQLError) error {
	state := string(e.SQLState[:])
	switch {
	case unavailableErrors[e.Number], state == "40001", strings.HasPrefix(state, "08"):
		return stores.ErrUnavailable
	case invalidErrors[e.Number], strings.HasPrefix(state, "22"), strings.HasPrefix(state, "23"), strings.HasPrefix(state, "42"):
		return stores.ErrInvalid
	}
	return nil
}

func describe(e *gomysql.MySQLError) string {
	var b strings.Builder
	if name, ok := errorNames[e.Number]; ok {
		b.WriteString(name + " ")
	}
	fmt.Fprintf(&b, "(MySQL error %d, SQLSTATE %s)", e.Number, string(e.SQLState[:]))
	for _, p := range objectPatterns {
		if !slices.Contains(p.errors, e.Number) {
			continue
		}
		if m := p.re.FindStringSubmatch(e.Message); m != nil && objectName.MatchString(m[1]) {
			fmt.Fprintf(&b, " %s %q", p.label, m[1])
		}
	}
	return b.String()
}

// describeUnavailable names the kind of a connection failure, never its text.
func describeUnavailable(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, driver.ErrBadConn) || errors.Is(err, gomysql.ErrInvalidConn) || errors.Is(err, syscall.ECONNRESET):
		return "the connection broke"
	default:
		return "network error"
	}
}
