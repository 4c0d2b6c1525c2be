package mysql

import (
	"fmt"
	"slices"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/lethe-dev/lethe/internal/stores"
)

// allowedParameters are the DSN parameters a DataStore may set. Everything
// else is Lethe's: the client options that let a server read local files or
// downgrade authentication, the session settings the engine relies on, and
// arbitrary session variables (any unknown parameter becomes a SET).
var allowedParameters = []string{"tls", "timeout", "readTimeout", "writeTimeout"}

// allowedTLS are the tls values accepted. "preferred" is refused: it falls
// back to plaintext when the server offers no TLS.
var allowedTLS = []string{"true", "false", "skip-verify"}

// sqlMode makes every session strict whatever the server's default, so a
// value that does not fit its column is refused rather than truncated.
const sqlMode = "'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'"

// connConfig parses dsn, refuses what a tenant may not set, and pins the
// client options and session settings the engine relies on.
func connConfig(dsn string, network stores.Network) (*gomysql.Config, error) {
	if err := network.Validate(); err != nil {
		return nil, err
	}
	dsn = strings.TrimSpace(dsn)
	params, err := dsnParameters(dsn)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	if err := stores.CheckParameters("MySQL", keys, allowedParameters); err != nil {
		return nil, err
	}
	if v, ok := params["tls"]; ok && !slices.Contains(allowedTLS, v) {
		return nil, fmt.Errorf("%w: the MySQL DSN's tls must be one of %s", stores.ErrConnectionSettings, strings.Join(allowedTLS, ", "))
	}
	if network.RequireTLS && params["tls"] != "true" && params["tls"] != "skip-verify" {
		return nil, fmt.Errorf("%w: the operator requires TLS: the MySQL DSN must set tls=true", stores.ErrConnectionSettings)
	}
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		// The parser's error may quote the DSN, password included.
		return nil, fmt.Errorf("%w: the MySQL DSN cannot be parsed (want user:password@tcp(host:3306)/database)", stores.ErrInvalid)
	}
	switch cfg.Net {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("%w: the MySQL DSN must use tcp(host:port); sockets and other networks are refused", stores.ErrConnectionSettings)
	}
	if cfg.Timeout > stores.MaxDialTimeout {
		return nil, fmt.Errorf("%w: the MySQL DSN's timeout is longer than %s", stores.ErrConnectionSettings, stores.MaxDialTimeout)
	}
	if err := cfg.Apply(gomysql.Charset("utf8mb4", "")); err != nil {
		return nil, fmt.Errorf("%w: setting the connection charset: %v", stores.ErrInvalid, err)
	}
	cfg.Params = map[string]string{
		"time_zone": "'+00:00'", // masking generalizes TIMESTAMPs in UTC
		"sql_mode":  sqlMode,
	}
	cfg.ParseTime, cfg.Loc = true, time.UTC
	// Values travel as parameters of server-side prepared statements; one
	// statement per call; affected rows count the rows actually changed.
	cfg.InterpolateParams, cfg.MultiStatements, cfg.ClientFoundRows = false, false, false
	// A server must never read the manager's files (LOAD DATA LOCAL INFILE:
	// with no file or reader registered, the driver refuses every request)
	// nor obtain the password in clear or under the old broken hash.
	cfg.AllowAllFiles, cfg.AllowCleartextPasswords, cfg.AllowOldPasswords, cfg.AllowFallbackToPlaintext = false, false, false, false
	cfg.ServerPubKey, cfg.ConnectionAttributes = "", ""
	cfg.DialFunc = network.Dial
	if cfg.Timeout == 0 {
		cfg.Timeout = network.Timeout()
	}
	return cfg, nil
}

// dsnParameters returns the query parameters of a go-sql-driver DSN as the
// driver reads them: after the first '?' that follows the last '/'.
func dsnParameters(dsn string) (map[string]string, error) {
	out := map[string]string{}
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		return out, nil
	}
	_, query, found := strings.Cut(dsn[slash+1:], "?")
	if !found || query == "" {
		return out, nil
	}
	for _, kv := range strings.Split(query, "&") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: the MySQL DSN has a malformed parameter", stores.ErrConnectionSettings)
		}
		out[k] = v
	}
	return out, nil
}
