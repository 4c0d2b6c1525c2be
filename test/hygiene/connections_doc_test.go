package hygiene_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	httpstore "github.com/lethe-dev/lethe/internal/stores/http"
	"github.com/lethe-dev/lethe/internal/stores/mysql"
	"github.com/lethe-dev/lethe/internal/stores/postgres"
	"github.com/lethe-dev/lethe/internal/stores/redis"
)

// The documented hosts are cluster Service names; the engines are given this
// address instead (TEST-NET-1, never dialled: the dialer only records it).
const testHost = "192.0.2.10"

var serviceHost = regexp.MustCompile(`[a-z0-9.-]+\.svc\.cluster\.local`)

// recorder is a stores.Network dialer that connects nowhere and records the
// addresses an engine asked for.
type recorder struct {
	mu    sync.Mutex
	addrs []string
}

var errNotDialled = errors.New("not dialled: test")

func (r *recorder) dial(_ context.Context, _, address string) (net.Conn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs = append(r.addrs, address)
	return nil, errNotDialled
}

// open hands s to the engine's own constructor, as the connector does, and
// returns its error (nil for a processor, which New does not dial) and the
// addresses it dialled.
func open(t *testing.T, engine, s, authorization string, requireTLS bool) ([]string, error) {
	t.Helper()
	rec := &recorder{}
	network := stores.Network{Dial: rec.dial, DialTimeout: time.Second, RequireTLS: requireTLS}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m := &datamap.Map{}
	var err error
	switch engine {
	case "postgres":
		var st *postgres.Store
		if st, err = postgres.New(ctx, s, m, nil, network); st != nil {
			st.Close()
		}
	case "mysql":
		var st *mysql.Store
		if st, err = mysql.New(ctx, s, m, nil, network); st != nil {
			st.Close()
		}
	case "redis":
		var st *redis.Store
		if st, err = redis.New(ctx, s, m, nil, network); st != nil {
			st.Close()
		}
	case "http":
		var st *httpstore.Store
		if st, err = httpstore.New(httpstore.Config{BaseURL: s, Authorization: authorization, Network: network}, m); st != nil {
			st.Close()
		}
	default:
		t.Fatalf("unknown engine %q", engine)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.addrs, err
}

// accepted says whether the engine took s: it got as far as dialling the
// documented host (a processor: New succeeded).
func accepted(engine string, addrs []string, err error) bool {
	if engine == "http" {
		return err == nil
	}
	if err == nil || errors.Is(err, stores.ErrInvalid) {
		return false // nil: it connected somewhere it should not have
	}
	for _, a := range addrs {
		if host, _, _ := net.SplitHostPort(a); host != testHost {
			return false
		}
	}
	return len(addrs) > 0
}

// looksTLS is the documented --require-tls rule per engine.
func looksTLS(engine, s string) bool {
	switch engine {
	case "postgres":
		m := regexp.MustCompile(`sslmode=([a-z-]+)`).FindStringSubmatch(s)
		return m == nil || m[1] == "require" || m[1] == "verify-ca" || m[1] == "verify-full"
	case "mysql":
		return strings.Contains(s, "tls=true") || strings.Contains(s, "tls=skip-verify")
	case "redis":
		return strings.HasPrefix(s, "rediss://")
	default:
		return strings.HasPrefix(s, "https://")
	}
}

// connectionSection returns docs/operations.md's "Connection strings per
// engine" by engine subsection.
func connectionSection(t *testing.T) map[string]string {
	t.Helper()
	doc := string(readFile(t, "docs", "operations.md"))
	start := strings.Index(doc, "\n### Connection strings per engine\n")
	if start < 0 {
		t.Fatal(`docs/operations.md has no "Connection strings per engine" section`)
	}
	section := doc[start+1:]
	if end := strings.Index(section[4:], "\n### "); end >= 0 {
		section = section[:end+4]
	}
	engines := map[string]string{"PostgreSQL": "postgres", "MySQL and MariaDB": "mysql", "Redis": "redis", "HTTP processors": "http", "Common mistakes": "mistakes"}
	out := map[string]string{}
	for _, part := range strings.Split(section, "\n#### ")[1:] {
		title, body, _ := strings.Cut(part, "\n")
		e, ok := engines[title]
		if !ok {
			t.Fatalf("unexpected subsection %q", title)
		}
		out[e] = body
	}
	for _, e := range engines {
		if out[e] == "" {
			t.Fatalf("the section has no subsection for %s", e)
		}
	}
	return out
}

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// Every Secret of the documented examples holds connection strings its engine
// accepts (and --require-tls accepts exactly those the docs say travel in TLS).
func TestDocumentedConnectionStringsAreAccepted(t *testing.T) {
	sections := connectionSection(t)
	for _, engine := range []string{"postgres", "mysql", "redis", "http"} {
		var secrets []corev1.Secret
		for _, block := range yamlBlock.FindAllStringSubmatch(sections[engine], -1) {
			dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(block[1])), 4096)
			for {
				var s corev1.Secret
				if err := dec.Decode(&s); err != nil {
					if err != io.EOF {
						t.Fatalf("%s example: %v\n%s", engine, err, block[1])
					}
					break
				}
				if s.Kind == "Secret" {
					secrets = append(secrets, s)
				}
			}
		}
		if len(secrets) == 0 {
			t.Errorf("no example Secret for %s", engine)
		}
		for _, sec := range secrets {
			for key, value := range sec.StringData {
				auth := ""
				if engine == "http" {
					if key != "url" {
						continue
					}
					auth = sec.StringData["authorization"]
				}
				s := serviceHost.ReplaceAllString(value, testHost)
				addrs, err := open(t, engine, s, auth, false)
				if !accepted(engine, addrs, err) {
					t.Errorf("%s example %s/%s is not accepted (dialled %v): %v", engine, sec.Name, key, addrs, err)
				}
				addrs, err = open(t, engine, s, auth, true)
				if got, want := accepted(engine, addrs, err), looksTLS(engine, value); got != want {
					t.Errorf("%s example %s/%s with --require-tls: accepted %v, the docs say %v (%v)", engine, sec.Name, key, got, want, err)
				}
			}
		}
	}
}

var mistakeRow = regexp.MustCompile("(?m)^\\| (postgres|mysql|redis|http) \\| `([^`]+)` \\| `([^`]+)`")

// The common mistakes are refused before anything is dialled, and what the
// docs suggest instead is accepted.
func TestDocumentedMistakesAreRefused(t *testing.T) {
	rows := mistakeRow.FindAllStringSubmatch(connectionSection(t)["mistakes"], -1)
	if len(rows) < 5 {
		t.Fatalf("%d rows in the common mistakes table", len(rows))
	}
	for _, r := range rows {
		engine, bad, good := r[1], serviceHost.ReplaceAllString(r[2], testHost), serviceHost.ReplaceAllString(r[3], testHost)
		if addrs, err := open(t, engine, bad, "", false); accepted(engine, addrs, err) || len(addrs) > 0 || !errors.Is(err, stores.ErrInvalid) {
			t.Errorf("%s: %s was not refused before dialling (dialled %v): %v", engine, r[2], addrs, err)
		}
		if addrs, err := open(t, engine, good, "", false); !accepted(engine, addrs, err) {
			t.Errorf("%s: %s, the fix, is not accepted (dialled %v): %v", engine, r[3], addrs, err)
		}
	}
}
