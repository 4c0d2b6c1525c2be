package security

// A DataStore's connection string is tenant input (issue 11): whoever may
// create a DataStore chooses the server the manager talks to and every
// parameter of the connection. These tests play that tenant against the
// engines and the connector. Every byte they send goes to loopback
// (127.0.0.0/8): hostile servers, tripwires and black holes are Go listeners
// of this process, and the real servers are the local ones.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connector"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/egress"
	"github.com/lethe-dev/lethe/internal/stores"
	mysqlstore "github.com/lethe-dev/lethe/internal/stores/mysql"
	"github.com/lethe-dev/lethe/internal/stores/postgres"
	redisstore "github.com/lethe-dev/lethe/internal/stores/redis"
	"github.com/lethe-dev/lethe/internal/testdb"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// canaryPassword is put in every connection string: no error may repeat it.
const canaryPassword = "s3cret-canary"

// The local servers (see DESIGN.md, "Real parts").
const (
	localPostgres = "127.0.0.1:5432"
	localMySQL    = "127.0.0.1:3306"
	localRedis    = "127.0.0.1:6379"
)

// ---------------------------------------------------------------------------
// 1. LOCAL INFILE

// TestMySQLLocalInfileIsNeverAnswered runs the attack of issue 11 against
// the MySQL engine: a server the tenant controls answers every query with a
// LOCAL INFILE request for a file of the manager's. Whatever the DSN says and
// however the server names the file, no byte of it may reach the server. A
// control first shows that a driver which honours the request does leak the
// file to this server, so the assertions can fail.
func TestMySQLLocalInfileIsNeverAnswered(t *testing.T) {
	canary, content := canaryFile(t)
	m := mysqlMap(t)

	t.Run("control: a driver that honours LOCAL INFILE leaks the file", func(t *testing.T) {
		srv := startHostileMySQL(t, canary, "")
		cfg := gomysql.NewConfig()
		cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", srv.addr(), "x"
		cfg.AllowAllFiles = true // what ?allowAllFiles=true used to give the tenant
		conn, err := gomysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(conn)
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "SELECT 1")
		_, _, data, _, after := srv.snapshot()
		if !bytes.Contains(after, content) || data == 0 {
			t.Fatalf("the hostile server did not receive the canary from a driver with AllowAllFiles (%d data packets): the harness cannot see a leak", data)
		}
	})

	// The names a server may give: the path as is, quoted (the driver strips
	// quotes), relative to the manager's working directory, and the
	// driver's registered-reader forms.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	relative, err := filepath.Rel(wd, canary)
	if err != nil {
		t.Fatal(err)
	}
	fileNames := []struct{ label, name string }{
		{"absolute path", canary},
		{"quoted path", `"` + canary + `"`},
		{"relative path", relative},
		{"reader", "Reader::" + filepath.Base(canary)},
		{"reader under a directory", filepath.Dir(canary) + "/Reader::x"},
	}
	// DSNs the engine accepts: it connects, and the server mounts the attack.
	accepted := []struct{ label, dsn string }{
		{"no parameters", "root@tcp(ADDR)/x"},
		{"password and timeout", "root:" + canaryPassword + "@tcp(ADDR)/x?timeout=5s"},
		{"every allowed parameter", "root:" + canaryPassword + "@tcp(ADDR)/x?timeout=5s&readTimeout=10s&writeTimeout=10s&tls=false"},
	}
	for _, fn := range fileNames {
		for _, dc := range accepted {
			t.Run("accepted/"+dc.label+"/"+fn.label, func(t *testing.T) {
				srv := startHostileMySQL(t, fn.name, "")
				err := openMySQLAgainst(t, srv, dc.dsn, m)
				conns, requests, data, received, after := srv.snapshot()
				if conns == 0 || requests == 0 {
					t.Fatalf("the server saw %d connections and sent %d LOCAL INFILE requests: the attack was never mounted (open: %v)", conns, requests, err)
				}
				assertNoCanary(t, received, content)
				if data != 0 {
					t.Errorf("the client answered LOCAL INFILE with %d data packets (%d bytes after the request), want none", data, len(after))
				}
				assertNoPassword(t, err)
			})
		}
	}

	// DSNs the engine refuses before it connects: the client options that
	// read files or weaken authentication, and everything else that is not
	// on the allowlist, however it is spelled.
	refused := []struct {
		label, query string
		// names is what the refusal must name; settings is false for a DSN
		// that does not even parse (still refused as invalid, still no connection).
		names    string
		settings bool
	}{
		{"allowAllFiles", "allowAllFiles=true", "allowAllFiles", true},
		{"allowAllFiles after an allowed one", "timeout=5s&allowAllFiles=true", "allowAllFiles", true},
		{"allowAllFiles twice", "allowAllFiles=true&allowAllFiles=false", "allowAllFiles", true},
		{"allowAllFiles in lower case", "allowallfiles=true", "allowallfiles", true},
		{"allowAllFiles without a value", "allowAllFiles", "malformed parameter", true},
		{"allowAllFiles escaped", "allow%41llFiles=true", "malformed parameter", true},
		{"allowAllFiles inside a value", "timeout=5s?allowAllFiles=true", "", false},
		{"allowCleartextPasswords", "allowCleartextPasswords=true", "allowCleartextPasswords", true},
		{"allowOldPasswords", "allowOldPasswords=true", "allowOldPasswords", true},
		{"allowFallbackToPlaintext", "allowFallbackToPlaintext=true", "allowFallbackToPlaintext", true},
		{"multiStatements", "multiStatements=true", "multiStatements", true},
		{"interpolateParams", "interpolateParams=true", "interpolateParams", true},
		{"maxAllowedPacket", "maxAllowedPacket=0", "maxAllowedPacket", true},
		{"serverPubKey", "serverPubKey=x", "serverPubKey", true},
		{"local_infile session variable", "local_infile=1", "local_infile", true},
		{"charset", "charset=latin1", "charset", true},
		{"tls=preferred", "tls=preferred", "tls", true},
	}
	for _, rc := range refused {
		t.Run("refused/"+rc.label, func(t *testing.T) {
			srv := startHostileMySQL(t, canary, "")
			err := openMySQLAgainst(t, srv, "root:"+canaryPassword+"@tcp(ADDR)/x?"+rc.query, m)
			want := stores.ErrInvalid
			if rc.settings {
				want = stores.ErrConnectionSettings
			}
			if !errors.Is(err, want) {
				t.Fatalf("open: %v, want %v", err, want)
			}
			if !strings.Contains(err.Error(), rc.names) {
				t.Errorf("the refusal %q does not name %q", err, rc.names)
			}
			assertNoPassword(t, err)
			if conns, _, _, received, _ := srv.snapshot(); conns != 0 || len(received) != 0 {
				t.Errorf("the server saw %d connections (%d bytes): a refused DSN must be refused before connecting", conns, len(received))
			}
		})
	}

	// The same server may instead switch authentication to a plugin that
	// gets the password in clear (or under the broken pre-4.1 hash): the
	// engine must not answer either.
	for _, plugin := range []string{"mysql_clear_password", "mysql_old_password"} {
		t.Run("auth switch to "+plugin, func(t *testing.T) {
			srv := startHostileMySQL(t, canary, plugin)
			err := openMySQLAgainst(t, srv, "root:"+canaryPassword+"@tcp(ADDR)/x", m)
			if err == nil {
				t.Fatal("the engine connected through an authentication downgrade")
			}
			conns, _, _, received, _ := srv.snapshot()
			if conns == 0 {
				t.Fatal("the server saw no connection: the downgrade was never offered")
			}
			if bytes.Contains(received, []byte(canaryPassword)) {
				t.Errorf("the password reached the server in clear")
			}
			assertNoPassword(t, err)
		})
	}
}

// openMySQLAgainst opens the MySQL engine on dsn with ADDR replaced by the
// hostile server's address, and closes it if it opened.
func openMySQLAgainst(t *testing.T, srv *hostileMySQL, dsn string, m *datamap.Map) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := mysqlstore.New(ctx, strings.ReplaceAll(dsn, "ADDR", srv.addr()), m, nil, testdb.Loopback)
	if err == nil {
		s.Close()
	}
	return err
}

// canaryFile writes random content to a file only this test knows.
func canaryFile(t *testing.T) (path string, content []byte) {
	t.Helper()
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	content = []byte("lethe-canary-" + hex.EncodeToString(b))
	path = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, content
}

// assertNoCanary fails when received holds the canary, or a recognisable part of it.
func assertNoCanary(t *testing.T, received, content []byte) {
	t.Helper()
	for _, part := range [][]byte{content, content[len(content)-16:]} {
		if bytes.Contains(received, part) {
			t.Fatalf("the server received the canary file's content")
		}
	}
}

func assertNoPassword(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), canaryPassword) {
		t.Errorf("the error quotes the password: %v", err)
	}
}

// ---------------------------------------------------------------------------
// 2. Parameter allowlists

// engineUnderTest opens one engine on a connection string.
type engineUnderTest struct {
	name string
	// real is the local server's address.
	real string
	open func(ctx context.Context, dsn string, n stores.Network) (stores.Store, error)
}

func engines(t *testing.T) []engineUnderTest {
	pg, my, rd := postgresMap(t), mysqlMap(t), redisMap(t)
	return []engineUnderTest{
		{"postgres", localPostgres, func(ctx context.Context, dsn string, n stores.Network) (stores.Store, error) {
			return postgres.New(ctx, dsn, pg, nil, n)
		}},
		{"mysql", localMySQL, func(ctx context.Context, dsn string, n stores.Network) (stores.Store, error) {
			return mysqlstore.New(ctx, dsn, my, nil, n)
		}},
		{"redis", localRedis, func(ctx context.Context, dsn string, n stores.Network) (stores.Store, error) {
			return redisstore.New(ctx, dsn, rd, nil, n)
		}},
	}
}

// settingsCase is one connection string. ADDR is replaced by the real
// server's address when the string must open, and by a tripwire's (a
// listener that must never see a connection) when it must be refused.
type settingsCase struct {
	label, dsn string
	requireTLS bool
	// names is "" when the string must open; otherwise the string must be
	// refused as ErrConnectionSettings with a message containing names.
	names string
}

// settingsCases are, per engine, what a DataStore may and may not set.
var settingsCases = map[string][]settingsCase{
	"postgres": {
		{label: "sslmode=disable", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?sslmode=disable"},
		{label: "application_name and connect_timeout", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?sslmode=disable&application_name=lethe-test&connect_timeout=5"},
		{label: "connect_timeout at the maximum", dsn: "postgresql://postgres:" + canaryPassword + "@ADDR/postgres?sslmode=disable&connect_timeout=30&target_session_attrs=any"},
		{label: "keyword/value", dsn: "host=127.0.0.1 port=5432 user=postgres password='" + canaryPassword + "' dbname=postgres sslmode=disable connect_timeout=5 application_name=lethe"},
		{label: "passfile", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?passfile=/tmp/x", names: "passfile"},
		{label: "service", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?service=x", names: "service"},
		{label: "servicefile", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?servicefile=/tmp/x", names: "servicefile"},
		{label: "sslcert", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?sslcert=/tmp/x.crt", names: "sslcert"},
		{label: "sslkey", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?sslkey=/tmp/x.key", names: "sslkey"},
		{label: "sslpassword", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?sslpassword=x", names: "sslpassword"},
		{label: "sslrootcert path", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?sslrootcert=/etc/ssl/x", names: "sslrootcert"},
		{label: "options", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?options=-c%20search_path%3Dx", names: "options"},
		{label: "runtime parameter", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?search_path=x", names: "search_path"},
		{label: "default_query_exec_mode", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?default_query_exec_mode=simple_protocol", names: "default_query_exec_mode"},
		{label: "statement_cache_capacity", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?statement_cache_capacity=0", names: "statement_cache_capacity"},
		{label: "pool_max_conns", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?pool_max_conns=100", names: "pool_max_conns"},
		{label: "krbsrvname", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?krbsrvname=x", names: "krbsrvname"},
		{label: "unix socket in the query", dsn: "postgres://postgres:" + canaryPassword + "@/postgres?host=/var/run/postgresql", names: "unix socket"},
		{label: "keyword/value passfile", dsn: "host=127.0.0.1 user=postgres password=" + canaryPassword + " passfile=/tmp/x", names: "passfile"},
		{label: "keyword/value quoted options", dsn: "host=127.0.0.1 user=postgres password='" + canaryPassword + "' options='-c search_path=x'", names: "options"},
		{label: "keyword/value unix socket", dsn: "host=/var/run/postgresql user=postgres password=" + canaryPassword, names: "unix socket"},
		{label: "keyword/value socket as a fallback host", dsn: "host=127.0.0.1,/var/run/postgresql user=postgres password=" + canaryPassword, names: "unix socket"},
		{label: "connect_timeout too long", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?connect_timeout=3600", names: "connect_timeout"},
		{label: "sslmode=disable under RequireTLS", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?sslmode=disable", requireTLS: true, names: "sslmode"},
		{label: "sslmode=prefer under RequireTLS", dsn: "postgres://postgres:" + canaryPassword + "@ADDR/postgres?sslmode=prefer", requireTLS: true, names: "sslmode"},
		{label: "keyword/value sslmode=allow under RequireTLS", dsn: "host=127.0.0.1 user=postgres password=" + canaryPassword + " sslmode=allow", requireTLS: true, names: "sslmode"},
	},
	"mysql": {
		{label: "tcp", dsn: "root@tcp(ADDR)/"},
		{label: "allowed parameters", dsn: "root@tcp(ADDR)/mysql?timeout=5s&readTimeout=30s&writeTimeout=30s&tls=false"},
		{label: "timeout at the maximum", dsn: "root@tcp(ADDR)/?timeout=30s"},
		{label: "unix socket", dsn: "root:" + canaryPassword + "@unix(/tmp/mysql.sock)/x", names: "socket"},
		{label: "allowAllFiles", dsn: "root:" + canaryPassword + "@tcp(ADDR)/x?allowAllFiles=true", names: "allowAllFiles"},
		{label: "timeout too long", dsn: "root:" + canaryPassword + "@tcp(ADDR)/x?timeout=1h", names: "timeout"},
		{label: "no tls under RequireTLS", dsn: "root:" + canaryPassword + "@tcp(ADDR)/x", requireTLS: true, names: "tls"},
		{label: "tls=false under RequireTLS", dsn: "root:" + canaryPassword + "@tcp(ADDR)/x?tls=false", requireTLS: true, names: "tls"},
	},
	"redis": {
		{label: "db in the path", dsn: "redis://ADDR/0"},
		{label: "allowed parameters", dsn: "redis://ADDR?db=0&dial_timeout=5s&read_timeout=5s&write_timeout=5s&client_name=lethe-test&protocol=3"},
		{label: "dial_timeout at the maximum", dsn: "redis://ADDR/0?dial_timeout=30s"},
		{label: "unix socket", dsn: "unix://:" + canaryPassword + "@/tmp/redis.sock", names: "unix socket"},
		{label: "pool_size", dsn: "redis://:" + canaryPassword + "@ADDR/0?pool_size=100", names: "pool_size"},
		{label: "skip_verify", dsn: "rediss://:" + canaryPassword + "@ADDR/0?skip_verify=true", names: "skip_verify"},
		{label: "max_retries", dsn: "redis://:" + canaryPassword + "@ADDR/0?max_retries=100", names: "max_retries"},
		{label: "dial_timeout too long", dsn: "redis://:" + canaryPassword + "@ADDR/0?dial_timeout=1h", names: "dial_timeout"},
		{label: "redis:// under RequireTLS", dsn: "redis://:" + canaryPassword + "@ADDR/0", requireTLS: true, names: "rediss"},
	},
}

// TestConnectionParameterAllowlists opens each engine with the settings a
// DataStore may use (they work against the real local servers) and with
// settings it may not (refused before any connection, as
// ErrConnectionSettings, naming the parameter and never the password). Under
// RequireTLS, a string that does not ask for TLS gets it, and nothing goes
// to the server in plaintext.
func TestConnectionParameterAllowlists(t *testing.T) {
	for _, e := range engines(t) {
		for _, c := range settingsCases[e.name] {
			t.Run(e.name+"/"+c.label, func(t *testing.T) {
				network := testdb.Loopback
				network.RequireTLS = c.requireTLS
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if c.names == "" {
					s, err := e.open(ctx, strings.ReplaceAll(c.dsn, "ADDR", e.real), network)
					if err != nil {
						t.Fatalf("an allowed connection string does not open: %v", err)
					}
					s.Close()
					return
				}
				trip := listenLoopback(t, "127.0.0.1:0", nil)
				_, err := e.open(ctx, strings.ReplaceAll(c.dsn, "ADDR", trip.addr()), network)
				if !errors.Is(err, stores.ErrConnectionSettings) {
					t.Fatalf("open: %v, want a refusal of the connection settings", err)
				}
				if !strings.Contains(err.Error(), c.names) {
					t.Errorf("the refusal %q does not name %q", err, c.names)
				}
				assertNoPassword(t, err)
				if n := trip.acceptedCount(); n != 0 {
					t.Errorf("%d connections before the refusal", n)
				}
			})
		}
	}

	// Under RequireTLS a string that asks for TLS (or, for PostgreSQL, says
	// nothing) is not a settings problem. The probes answer as a server
	// without TLS would; each proves the client asked for TLS first and
	// sent nothing else, so no credential went in plaintext.
	t.Run("postgres/sslmode=require is added under RequireTLS", func(t *testing.T) {
		// SSLRequest: length 8, code 80877103. A StartupMessage would carry the user in clear.
		sslRequest := []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}
		probe := listenLoopback(t, "127.0.0.1:0", func(c net.Conn, rec func([]byte)) {
			first := make([]byte, 8)
			if _, err := io.ReadFull(c, first); err != nil {
				return
			}
			rec(first)
			if bytes.Equal(first, sslRequest) {
				_, _ = c.Write([]byte{'N'}) // "no TLS here"
			}
			recordUntilClosed(c, rec)
		})
		err := openEngine(t, "postgres", "postgres://lethe-user:"+canaryPassword+"@"+probe.addr()+"/postgres", true)
		assertTLSRefusedInPlaintext(t, err, probe, func(session []byte) bool { return bytes.Equal(session, sslRequest) })
	})
	// rediss:// asks for TLS whether or not the operator requires it.
	for _, requireTLS := range []bool{true, false} {
		t.Run(fmt.Sprintf("redis/rediss (RequireTLS %v)", requireTLS), func(t *testing.T) {
			probe := listenLoopback(t, "127.0.0.1:0", func(c net.Conn, rec func([]byte)) {
				buf := make([]byte, 4096)
				n, _ := c.Read(buf) // the ClientHello, or HELLO/AUTH in clear; then hang up
				rec(buf[:n])
			})
			err := openEngine(t, "redis", "rediss://lethe-user:"+canaryPassword+"@"+probe.addr()+"/0", requireTLS)
			// A TLS record of type handshake (0x16) starts the session; RESP would start with '*'.
			assertTLSRefusedInPlaintext(t, err, probe, func(session []byte) bool { return len(session) > 0 && session[0] == 0x16 })
		})
	}
	t.Run("mysql/tls=true under RequireTLS", func(t *testing.T) {
		// The hostile server does not offer CLIENT_SSL: the client must hang
		// up after the greeting without its handshake response (user, password hash).
		canary, _ := canaryFile(t)
		srv := startHostileMySQL(t, canary, "")
		err := openEngine(t, "mysql", "lethe-user:"+canaryPassword+"@tcp("+srv.addr()+")/x?tls=true", true)
		if err == nil || errors.Is(err, stores.ErrConnectionSettings) {
			t.Fatalf("open: %v, want a failed connection, not a settings refusal", err)
		}
		assertNoPassword(t, err)
		conns, _, _, received, _ := srv.snapshot()
		if conns == 0 {
			t.Fatal("no connection: the engine did not try")
		}
		if len(received) != 0 {
			t.Errorf("the client sent %d bytes to a server without TLS (its handshake response in plaintext)", len(received))
		}
	})
}

// openEngine opens the named engine on dsn through the loopback network.
func openEngine(t *testing.T, engine, dsn string, requireTLS bool) error {
	t.Helper()
	network := testdb.Loopback
	network.RequireTLS = requireTLS
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, e := range engines(t) {
		if e.name == engine {
			s, err := e.open(ctx, dsn, network)
			if err == nil {
				s.Close()
			}
			return err
		}
	}
	t.Fatalf("no engine %s", engine)
	return nil
}

// assertTLSRefusedInPlaintext: the open failed as a connection (not as a
// settings refusal), the probe saw at least one session, and every session
// is what tlsFirst accepts, without the user or password in clear.
func assertTLSRefusedInPlaintext(t *testing.T, err error, probe *loopbackServer, tlsFirst func(session []byte) bool) {
	t.Helper()
	if err == nil || errors.Is(err, stores.ErrConnectionSettings) {
		t.Fatalf("open: %v, want a failed connection, not a settings refusal", err)
	}
	assertNoPassword(t, err)
	sessions := probe.sessions()
	if len(sessions) == 0 {
		t.Fatal("no connection: the engine did not try")
	}
	for i, s := range sessions {
		if !tlsFirst(s) {
			t.Errorf("session %d did not ask for TLS first: % x", i, s[:min(len(s), 16)])
		}
		if bytes.Contains(s, []byte(canaryPassword)) || bytes.Contains(s, []byte("lethe-user")) {
			t.Errorf("session %d carried the credentials in plaintext", i)
		}
	}
}

// ---------------------------------------------------------------------------
// 3. Egress

// TestEgressRefusedBeforeConnecting opens each engine through an egress
// policy that refuses the server's address: the engine reports the refusal
// (ErrRefused, invalid: no retry helps) naming neither the address nor the
// port, and the server never sees a connection. A loopback address an
// operator denied (127.0.0.2, inside an allowed 127.0.0.0/8), loopback under
// the default policy (the real servers too), and a name that resolves to
// loopback: the check is on the address actually dialled.
func TestEgressRefusedBeforeConnecting(t *testing.T) {
	denied := egress.MustNew(egress.Options{Allow: []string{"127.0.0.0/8"}, Deny: []string{"127.0.0.2/32"}})
	defaults := egress.MustNew(egress.Options{})
	dsnFor := map[string]string{
		"postgres": "postgres://postgres:" + canaryPassword + "@ADDR/postgres?sslmode=disable",
		"mysql":    "root:" + canaryPassword + "@tcp(ADDR)/x",
		"redis":    "redis://:" + canaryPassword + "@ADDR/0",
	}
	for _, e := range engines(t) {
		_, realPort, _ := net.SplitHostPort(e.real)
		cases := []struct {
			label  string
			policy *egress.Policy
			// listen is the tripwire's address ("" when dialling the real server);
			// host replaces the tripwire's host in the DSN when set.
			listen, host string
			class        string
		}{
			{"operator denies 127.0.0.2", denied, "127.0.0.2:0", "", egress.ClassDenied},
			{"default policy, loopback", defaults, "127.0.0.1:0", "", egress.ClassLoopback},
			{"default policy, the real server", defaults, "", "", egress.ClassLoopback},
			{"default policy, localhost", defaults, "127.0.0.1:0", "localhost", egress.ClassLoopback},
		}
		for _, c := range cases {
			t.Run(e.name+"/"+c.label, func(t *testing.T) {
				addr, port := e.real, realPort
				var trip *loopbackServer
				if c.listen != "" {
					trip = listenLoopback(t, c.listen, nil)
					addr = trip.addr()
					_, port, _ = net.SplitHostPort(addr)
				}
				host, _, _ := net.SplitHostPort(addr)
				if c.host != "" {
					addr, host = net.JoinHostPort(c.host, port), c.host
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				s, err := e.open(ctx, strings.ReplaceAll(dsnFor[e.name], "ADDR", addr), stores.Network{Dial: c.policy.DialContext})
				if err == nil {
					s.Close()
					t.Fatal("the engine connected to an address the policy refuses")
				}
				var refused *egress.RefusedError
				if !errors.Is(err, egress.ErrRefused) || !errors.Is(err, stores.ErrInvalid) || !errors.As(err, &refused) {
					t.Fatalf("open: %v, want an egress refusal wrapped in ErrInvalid", err)
				}
				if refused.Class != c.class {
					t.Errorf("refused as %q, want %q", refused.Class, c.class)
				}
				for _, leak := range []string{host, port, canaryPassword} {
					if strings.Contains(err.Error(), leak) {
						t.Errorf("the refusal %q repeats %q from the connection string", err, leak)
					}
				}
				if trip != nil {
					if n := trip.acceptedCount(); n != 0 {
						t.Errorf("the refused address accepted %d connections", n)
					}
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------
// 4. Isolation between stores in the connector

// TestBlackholedStoreDoesNotDelayOthers plays a tenant whose DataStore names a
// server that accepts TCP connections and never answers. While the connector
// waits for it, another DataStore opens, checks and erases; callers of the
// black-holed store share one attempt; and a failed or timed-out attempt is
// not cached: the next caller tries again.
func TestBlackholedStoreDoesNotDelayOthers(t *testing.T) {
	conn, bDSN := peopleDB(t, map[int64]string{1: "b@x.io", 2: "other@x.io"})
	secrets := secretReader{}
	storeA := func(hole *loopbackServer, name string) *privacyv1.DataStore {
		// sslmode=disable: one dial per attempt (prefer would retry in plaintext).
		// connect_timeout=30: pgx gives up only at the maximum, so the connector's
		// OpenTimeout (or the black hole hanging up) decides when the attempt ends.
		dsn := "postgres://postgres:" + canaryPassword + "@" + hole.addr() + "/x?sslmode=disable&connect_timeout=30"
		return connectorStore(secrets, name, dsn)
	}
	dsB := connectorStore(secrets, "b", bDSN)

	t.Run("another store opens, checks and erases meanwhile", func(t *testing.T) {
		hole := listenLoopback(t, "127.0.0.1:0", blackhole)
		dsA := storeA(hole, "a")
		c := connector.New(secrets, connector.Engines{Network: testdb.Loopback}.Open)
		c.OpenTimeout = 60 * time.Second // only the hang-up below ends A's attempt
		defer c.Close()

		aDone := acquireAsync(c, context.Background(), dsA)
		waitStartups(t, hole, 1) // A's attempt is in the middle of its startup handshake

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		lease, err := c.Acquire(ctx, dsB)
		if err != nil {
			t.Fatalf("B, while A is black-holed: %v", err)
		}
		res, err := lease.Store.Check(ctx)
		if err != nil || len(res.Problems) != 0 {
			t.Fatalf("B's check: %v, problems %v", err, res.Problems)
		}
		if _, err := lease.Store.Apply(ctx, stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"email": "b@x.io"}, RequestID: "blackhole-b"}); err != nil {
			t.Fatalf("B's erasure: %v", err)
		}
		lease.Release()
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM people WHERE email = 'b@x.io'`).Scan(&left); err != nil || left != 0 {
			t.Fatalf("B's subject: %d rows left (%v)", left, err)
		}
		select {
		case r := <-aDone:
			t.Fatalf("A's attempt ended (%v) before B was done: the test did not overlap them", r.err)
		default: // A is still waiting on the black hole: B did not wait for it
		}

		hole.hangUp()
		r := waitAcquire(t, aDone)
		if !errors.Is(r.err, stores.ErrUnavailable) {
			t.Errorf("A after the black hole hung up: %v, want ErrUnavailable", r.err)
		}
		assertNoPassword(t, r.err)
	})

	t.Run("one attempt per store, retried after a failure", func(t *testing.T) {
		hole := listenLoopback(t, "127.0.0.1:0", blackhole)
		dsA := storeA(hole, "a2")
		c := connector.New(secrets, connector.Engines{Network: testdb.Loopback}.Open)
		c.OpenTimeout = 2 * time.Second
		defer c.Close()

		first := acquireAsync(c, context.Background(), dsA)
		waitStartups(t, hole, 1)
		// The second caller joins the attempt in flight: its context's Done is
		// first asked for when it starts to wait for the attempt (Acquire's
		// select). A caller that dialled on its own would be seen by the hole.
		probe := newDoneProbe()
		second := acquireAsync(c, probe, dsA)
		select {
		case <-probe.asked:
		case <-time.After(30 * time.Second):
			t.Fatal("the second caller never started waiting")
		}
		r1, r2 := waitAcquire(t, first), waitAcquire(t, second)
		if r1.err == nil || r2.err == nil {
			t.Fatalf("acquiring a black-holed store succeeded: %v, %v", r1.err, r2.err)
		}
		if !errors.Is(r1.err, stores.ErrUnavailable) {
			t.Errorf("after OpenTimeout: %v, want ErrUnavailable", r1.err)
		}
		if r1.err != r2.err {
			t.Errorf("the two callers got different errors, so two attempts: %v / %v", r1.err, r2.err)
		}
		if n := pgStartups(hole); n != 1 {
			t.Errorf("two concurrent callers started %d PostgreSQL sessions, want 1 shared attempt", n)
		}

		// The timed-out attempt is not cached: the next caller dials again,
		// and so does the one after an attempt that failed outright.
		for attempt := 2; attempt <= 3; attempt++ {
			next := acquireAsync(c, context.Background(), dsA)
			waitStartups(t, hole, attempt)
			hole.hangUp()
			r := waitAcquire(t, next)
			if !errors.Is(r.err, stores.ErrUnavailable) {
				t.Errorf("attempt %d: %v, want ErrUnavailable", attempt, r.err)
			}
		}
		if n := pgStartups(hole); n != 3 {
			t.Errorf("%d PostgreSQL sessions started after three attempts, want 3", n)
		}
	})
}

// connectorStore is a postgres DataStore of namespace "tenant" whose DSN is
// in the Secret <name>-conn, registered with secrets.
func connectorStore(secrets secretReader, name, dsn string) *privacyv1.DataStore {
	secrets[types.NamespacedName{Namespace: "tenant", Name: name + "-conn"}] = map[string][]byte{"dsn": []byte(dsn)}
	ds := &privacyv1.DataStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: name, UID: types.UID("uid-" + name), Generation: 1},
		Spec:       peopleStoreSpec(),
	}
	ds.Spec.Connection.SecretRef = privacyv1.SecretKeySelector{Name: name + "-conn", Key: "dsn"}
	return ds
}

// secretReader is the connector's client.Reader for Secrets, from a map: the
// connector is the unit under test here, not the API server.
type secretReader map[types.NamespacedName]map[string][]byte

func (r secretReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	s, ok := obj.(*corev1.Secret)
	data, found := r[key]
	if !ok || !found {
		return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	s.Namespace, s.Name, s.Data = key.Namespace, key.Name, data
	return nil
}

func (r secretReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("secretReader does not list")
}

type acquired struct {
	lease *connector.Lease
	err   error
}

// acquireAsync calls Acquire in a goroutine; the result arrives on the channel.
func acquireAsync(c *connector.Connector, ctx context.Context, ds *privacyv1.DataStore) <-chan acquired {
	out := make(chan acquired, 1)
	go func() {
		l, err := c.Acquire(ctx, ds)
		out <- acquired{l, err}
	}()
	return out
}

// waitAcquire waits (bounded) for an Acquire to return, and releases its lease.
func waitAcquire(t *testing.T, ch <-chan acquired) acquired {
	t.Helper()
	select {
	case r := <-ch:
		r.lease.Release()
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("Acquire never returned")
		return acquired{}
	}
}

// doneProbe is a context that says when its Done channel is first asked for.
type doneProbe struct {
	context.Context
	once  sync.Once
	asked chan struct{}
}

func newDoneProbe() *doneProbe {
	return &doneProbe{Context: context.Background(), asked: make(chan struct{})}
}

func (p *doneProbe) Done() <-chan struct{} {
	p.once.Do(func() { close(p.asked) })
	return p.Context.Done()
}

// ---------------------------------------------------------------------------
// Loopback servers

// loopbackServer is a TCP listener on a loopback address that counts the
// connections it accepts and records what each client sends. handle serves
// one connection; nil closes it at once (a tripwire: it only counts).
type loopbackServer struct {
	ln     net.Listener
	notify chan struct{} // signalled whenever a connection or bytes arrive

	mu       sync.Mutex
	accepted int
	open     []net.Conn
	received []*bytes.Buffer // per connection, in accept order
	wg       sync.WaitGroup
}

func listenLoopback(t *testing.T, address string, handle func(c net.Conn, rec func([]byte))) *loopbackServer {
	t.Helper()
	if host, _, _ := net.SplitHostPort(address); !net.ParseIP(host).IsLoopback() {
		t.Fatalf("%s is not a loopback address", address) // never listen for (or invite) other traffic
	}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	s := &loopbackServer{ln: ln, notify: make(chan struct{}, 1)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := &bytes.Buffer{}
			s.mu.Lock()
			s.accepted++
			s.open = append(s.open, c)
			s.received = append(s.received, buf)
			s.mu.Unlock()
			s.signal()
			if handle == nil {
				c.Close()
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(90 * time.Second)) // bounded, whatever the client does
				handle(c, func(p []byte) {
					s.mu.Lock()
					buf.Write(p)
					s.mu.Unlock()
					s.signal()
				})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.hangUp()
		s.wg.Wait()
	})
	return s
}

func (s *loopbackServer) addr() string { return s.ln.Addr().String() }

func (s *loopbackServer) acceptedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// sessions returns what each connection's client sent so far.
func (s *loopbackServer) sessions() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(s.received))
	for i, b := range s.received {
		out[i] = bytes.Clone(b.Bytes())
	}
	return out
}

// hangUp closes every connection accepted so far.
func (s *loopbackServer) hangUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.open {
		c.Close()
	}
	s.open = nil
}

// blackhole accepts and never answers: it reads (so the client's writes
// succeed) until the connection is closed.
func blackhole(c net.Conn, rec func([]byte)) { recordUntilClosed(c, rec) }

func recordUntilClosed(c net.Conn, rec func([]byte)) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		rec(buf[:n])
		if err != nil {
			return
		}
	}
}

func (s *loopbackServer) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// waitFor waits (bounded) until cond holds of what s has seen.
func (s *loopbackServer) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-s.notify:
		case <-timeout:
			t.Fatalf("still waiting for %s", what)
		}
	}
}

// pgStartups counts the connections that began a PostgreSQL session: a
// StartupMessage (protocol 3.x). pgx also opens a connection to send a
// CancelRequest after a failed startup; those are not attempts to open a store.
func pgStartups(s *loopbackServer) int {
	n := 0
	for _, b := range s.sessions() {
		if len(b) >= 8 && b[4] == 0 && b[5] == 3 {
			n++
		}
	}
	return n
}

// waitStartups waits (bounded) until s has seen n PostgreSQL startups in all.
func waitStartups(t *testing.T, s *loopbackServer, n int) {
	t.Helper()
	s.waitFor(t, fmt.Sprintf("%d PostgreSQL startups", n), func() bool { return pgStartups(s) >= n })
}

// ---------------------------------------------------------------------------
// Data maps: the engines check them only when asked; opening needs one.

func postgresMap(t *testing.T) *datamap.Map { return buildMap(t, peopleStoreSpec()) }

func mysqlMap(t *testing.T) *datamap.Map {
	spec := peopleStoreSpec()
	spec.Engine = privacyv1.EngineMySQL
	return buildMap(t, spec)
}

func redisMap(t *testing.T) *datamap.Map {
	return buildMap(t, privacyv1.DataStoreSpec{Engine: privacyv1.EngineRedis, Collections: []privacyv1.Collection{
		{Name: "users", KeyPattern: "lethe-test:user:{email}", Identity: map[string]privacyv1.Identifier{"email": "email"}, OnErasure: privacyv1.ErasureDelete},
	}})
}

func buildMap(t *testing.T, spec privacyv1.DataStoreSpec) *datamap.Map {
	t.Helper()
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// go-sql-driver answers a server's LOAD DATA LOCAL INFILE with any file or
// reader registered anywhere in the process (RegisterLocalFile,
// RegisterReaderHandler), whatever the DSN says. The engine's protection is
// that the manager registers none: this keeps it so.
func TestNothingRegistersMySQLLocalFiles(t *testing.T) {
	root := testenv.RepoRoot()
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "hack" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, call := range []string{"RegisterLocalFile(", "RegisterReaderHandler("} {
			if bytes.Contains(data, []byte(call)) {
				found = append(found, strings.TrimPrefix(path, root)+": "+call)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("the manager's code registers MySQL local files or readers, which a hostile server could then read: %v", found)
	}
}

// A store that cannot be reached is reported without the connection
// string's user, database, host or port: the message goes to status.
func TestUnreachableStoresAreReportedWithoutTheirConnectionString(t *testing.T) {
	closed := listenLoopback(t, "127.0.0.1:0", blackhole)
	port := closed.addr()[strings.LastIndex(closed.addr(), ":")+1:]
	closed.ln.Close() // nothing listens there any more: connection refused
	cases := map[string]string{
		"postgres": "postgres://lethe_canary_user:s3cret-canary@127.0.0.1:" + port + "/lethe_canary_db?sslmode=disable",
		"mysql":    "lethe_canary_user:s3cret-canary@tcp(127.0.0.1:" + port + ")/lethe_canary_db",
		"redis":    "redis://lethe_canary_user:s3cret-canary@127.0.0.1:" + port + "/0",
	}
	for engine, dsn := range cases {
		err := openEngine(t, engine, dsn, false)
		if !errors.Is(err, stores.ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", engine, err)
			continue
		}
		for _, leak := range []string{"lethe_canary_user", "lethe_canary_db", "s3cret-canary", ":" + port} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("%s: the error repeats %q from the connection string: %v", engine, leak, err)
			}
		}
	}
}
