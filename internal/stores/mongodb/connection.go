package mongodb

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/lethe-dev/lethe/internal/stores"
)

// allowedParameters are the URL query parameters a DataStore may set. Every
// parameter that names a file (tlsCAFile, tlsCertificateKeyFile), weakens TLS
// (tlsInsecure, tlsAllowInvalid*), or lets the driver pick up the manager's
// own credentials (authMechanismProperties) is refused.
var allowedParameters = []string{
	"authSource", "authMechanism", "tls", "ssl", "replicaSet", "directConnection", "appName",
	"connectTimeoutMS", "serverSelectionTimeoutMS", "socketTimeoutMS", "retryWrites", "retryReads",
}

// allowedMechanisms are the authentication mechanisms that use only the
// credentials of the URL: MONGODB-AWS, GSSAPI, MONGODB-OIDC and MONGODB-X509
// would use the manager's environment, files or cloud identity.
var allowedMechanisms = []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"}

var databaseName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)

// settings is a parsed mongodb:// URL.
type settings struct {
	opts     *options.ClientOptions
	database string
	hosts    []string
}

// refusals records the egress refusals of the driver's dials: the driver
// hides dial errors behind its server selection error.
type refusals struct {
	mu   sync.Mutex
	last error
}

func (r *refusals) record(err error) {
	if refused := stores.EgressRefusal(err); refused != nil {
		r.mu.Lock()
		r.last = refused
		r.mu.Unlock()
	}
}

func (r *refusals) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

type dialer struct {
	network stores.Network
	seen    *refusals
}

func (d dialer) DialContext(ctx context.Context, netw, addr string) (net.Conn, error) {
	conn, err := d.network.Dial(ctx, netw, addr)
	if err != nil {
		d.seen.record(err)
	}
	return conn, err
}

// parseURL refuses what a tenant may not set and returns client options that
// dial through network only. The URL may hold a password: it is never quoted.
func parseURL(raw string, network stores.Network, seen *refusals) (settings, error) {
	if err := network.Validate(); err != nil {
		return settings{}, err
	}
	raw = strings.TrimSpace(raw)
	if hosts := strings.ToLower(hostPart(raw)); strings.Contains(hosts, ".sock") || strings.Contains(hosts, "%2f") || strings.Contains(hosts, "/") {
		return settings{}, fmt.Errorf("%w: the mongodb URL names a unix socket; connect over TCP", stores.ErrConnectionSettings)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return settings{}, fmt.Errorf("%w: the mongodb URL does not parse", stores.ErrInvalid)
	}
	switch u.Scheme {
	case "mongodb":
	case "mongodb+srv":
		return settings{}, fmt.Errorf("%w: mongodb+srv URLs take hosts and options from DNS records; list the hosts in a mongodb:// URL", stores.ErrConnectionSettings)
	default:
		return settings{}, fmt.Errorf("%w: the mongodb URL must start with mongodb://", stores.ErrInvalid)
	}
	var hosts []string
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return settings{}, fmt.Errorf("%w: the mongodb URL has an empty host", stores.ErrInvalid)
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, "27017")
		}
		hosts = append(hosts, h)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if !databaseName.MatchString(db) {
		return settings{}, fmt.Errorf("%w: the mongodb URL must name the database as its path (mongodb://host:27017/app), letters, digits, _ and - only", stores.ErrInvalid)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return settings{}, fmt.Errorf("%w: the mongodb URL's query does not parse", stores.ErrInvalid)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if err := stores.CheckParameters("mongodb", keys, allowedParameters); err != nil {
		return settings{}, err
	}
	if m := q.Get("authMechanism"); m != "" && !slices.Contains(allowedMechanisms, m) {
		return settings{}, fmt.Errorf("%w: the mongodb URL's authMechanism must be one of %s", stores.ErrConnectionSettings, strings.Join(allowedMechanisms, ", "))
	}
	tls := q.Get("tls") == "true" || q.Get("ssl") == "true"
	if network.RequireTLS && !tls {
		return settings{}, fmt.Errorf("%w: the operator requires TLS: add tls=true to the mongodb URL", stores.ErrConnectionSettings)
	}
	if v := q.Get("connectTimeoutMS"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || time.Duration(ms)*time.Millisecond > stores.MaxDialTimeout {
			return settings{}, fmt.Errorf("%w: the mongodb URL's connectTimeoutMS must be a number of milliseconds up to %s", stores.ErrConnectionSettings, stores.MaxDialTimeout)
		}
	}
	opts := options.Client().ApplyURI(raw)
	if err := opts.Validate(); err != nil {
		return settings{}, fmt.Errorf("%w: the mongodb URL is not valid", stores.ErrInvalid)
	}
	if q.Get("connectTimeoutMS") == "" {
		opts.SetConnectTimeout(network.Timeout())
	}
	if q.Get("serverSelectionTimeoutMS") == "" {
		opts.SetServerSelectionTimeout(network.Timeout())
	}
	opts.SetDialer(dialer{network: network, seen: seen})
	opts.SetMaxPoolSize(8)
	return settings{opts: opts, database: db, hosts: hosts}, nil
}

// probe dials every host of the URL once through network, so that an
// address the egress policy refuses is refused at once, not after the
// driver's server selection timeout.
func probe(ctx context.Context, network stores.Network, hosts []string) error {
	for _, h := range hosts {
		dctx, cancel := context.WithTimeout(ctx, network.Timeout())
		conn, err := network.Dial(dctx, "tcp", h)
		cancel()
		if err != nil {
			if refused := stores.EgressRefusal(err); refused != nil {
				return refused
			}
			continue // the driver reports unreachable servers
		}
		conn.Close()
	}
	return nil
}

// hostPart is the host list of a mongodb:// URL as written: after the
// scheme and the credentials, before the path.
func hostPart(raw string) string {
	_, rest, _ := strings.Cut(raw, "://")
	authority, _, _ := strings.Cut(rest, "/")
	authority, _, _ = strings.Cut(authority, "?")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	return authority
}
