package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-dev/lethe/internal/stores"
)

// allowedParameters are the connection-string parameters a DataStore may set.
// Everything else is refused: parameters that read the manager's files
// (passfile, service, servicefile, sslcert, sslkey, a sslrootcert path), that
// change how values travel (default_query_exec_mode, statement caches), pool
// sizes (Lethe's own), and server settings (options and any runtime parameter).
var allowedParameters = []string{
	"host", "port", "database", "dbname", "user", "password",
	"sslmode", "sslrootcert", "sslsni", "connect_timeout", "application_name", "target_session_attrs",
}

// tlsModes are the sslmode values that never send anything in plaintext.
var tlsModes = []string{"require", "verify-ca", "verify-full"}

// poolConfig parses dsn, refuses what a tenant may not set, and makes every
// connection dial through network.
func poolConfig(dsn string, network stores.Network) (*pgxpool.Config, error) {
	if err := network.Validate(); err != nil {
		return nil, err
	}
	dsn = strings.TrimSpace(dsn)
	params, isURL, err := connParameters(dsn)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	if err := stores.CheckParameters("PostgreSQL", keys, allowedParameters); err != nil {
		return nil, err
	}
	if v, ok := params["sslrootcert"]; ok && v != "system" {
		return nil, fmt.Errorf("%w: the PostgreSQL connection string's sslrootcert may only be \"system\" (a path would name a file of the manager's)", stores.ErrConnectionSettings)
	}
	mode, hasMode := params["sslmode"]
	if network.RequireTLS {
		switch {
		case !hasMode:
			dsn = withParameter(dsn, isURL, "sslmode", "require")
		case !slices.Contains(tlsModes, mode):
			return nil, fmt.Errorf("%w: the operator requires TLS: sslmode must be one of %s", stores.ErrConnectionSettings, strings.Join(tlsModes, ", "))
		}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parser's error quotes the connection string, password included.
		return nil, fmt.Errorf("%w: the PostgreSQL connection string cannot be parsed", stores.ErrInvalid)
	}
	cc := cfg.ConnConfig
	hosts := []string{cc.Host}
	for _, f := range cc.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		if strings.HasPrefix(h, "/") {
			return nil, fmt.Errorf("%w: the PostgreSQL connection string names a unix socket; connect over TCP", stores.ErrConnectionSettings)
		}
	}
	// ParseConfig reads the manager's PG* environment; runtime parameters
	// from it are the operator's, but a tenant string can set none (above).
	if cc.ConnectTimeout > stores.MaxDialTimeout {
		return nil, fmt.Errorf("%w: the PostgreSQL connect_timeout is longer than %s", stores.ErrConnectionSettings, stores.MaxDialTimeout)
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = network.Timeout()
	}
	cc.DialFunc = network.Dial
	// No GSSAPI/Kerberos: the manager has no tickets to lend to a tenant's server.
	cc.KerberosSrvName, cc.KerberosSpn = "", ""
	if network.RequireTLS {
		// Belt and braces: no attempt (first host or fallback) may go in plaintext.
		if cc.TLSConfig == nil || slices.ContainsFunc(cc.Fallbacks, func(f *pgconn.FallbackConfig) bool { return f.TLSConfig == nil }) {
			return nil, fmt.Errorf("%w: the operator requires TLS: sslmode must be one of %s", stores.ErrConnectionSettings, strings.Join(tlsModes, ", "))
		}
	}
	return cfg, nil
}

// connParameters returns the parameters a connection string sets, in either
// of libpq's forms: a postgres:// URL (its query) or keyword=value pairs.
// Errors never quote the string.
func connParameters(dsn string) (params map[string]string, isURL bool, err error) {
	malformed := fmt.Errorf("%w: the PostgreSQL connection string cannot be parsed", stores.ErrInvalid)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, true, malformed
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return nil, true, malformed
		}
		params = map[string]string{}
		for k, vs := range q {
			params[k] = vs[len(vs)-1]
		}
		return params, true, nil
	}
	params, err = keywordValues(dsn)
	if err != nil {
		return nil, false, malformed
	}
	return params, false, nil
}

// keywordValues reads libpq keyword=value pairs: values bare or in single
// quotes, with backslash escapes.
func keywordValues(s string) (map[string]string, error) {
	out := map[string]string{}
	isSpace := func(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f' }
	trim := func(s string) string {
		for len(s) > 0 && isSpace(s[0]) {
			s = s[1:]
		}
		return s
	}
	for s = trim(s); s != ""; s = trim(s) {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, errors.New("invalid keyword/value")
		}
		key := strings.TrimRight(s[:eq], " \t\n\r\v\f")
		if strings.ContainsAny(key, " \t\n\r\v\f") || key == "" {
			return nil, errors.New("invalid keyword")
		}
		s = trim(s[eq+1:])
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for len(s) > 0 {
				c := s[0]
				s = s[1:]
				if c == '\\' && len(s) > 0 {
					val.WriteByte(s[0])
					s = s[1:]
					continue
				}
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, errors.New("unterminated quoted string")
			}
		} else {
			for len(s) > 0 && !isSpace(s[0]) {
				c := s[0]
				s = s[1:]
				if c == '\\' && len(s) > 0 {
					c = s[0]
					s = s[1:]
				}
				val.WriteByte(c)
			}
		}
		out[key] = val.String()
	}
	return out, nil
}

// withParameter adds key=value to a connection string that does not set key.
func withParameter(dsn string, isURL bool, key, value string) string {
	if isURL {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
	}
	return dsn + " " + key + "=" + value
}

// describeConnectError says why a connection failed without pgx's text,
// which repeats the connection string's user, database, host and port (a
// tenant's Secret) into the DataStore's status.
func describeConnectError(err error) string {
	var pgErr *pgconn.PgError
	var netErr net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &pgErr):
		return fmt.Sprintf("the server refused the connection (SQLSTATE %s)", pgErr.Code)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dnsErr):
		return "the host name does not resolve"
	case strings.Contains(err.Error(), "tls") || strings.Contains(err.Error(), "TLS"):
		return "the TLS handshake failed (or the server does not offer TLS)"
	default:
		return "the connection failed"
	}
}
