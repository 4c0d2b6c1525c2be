// Package http is the engine for third-party processors (Stripe, Intercom,
// ...): data-subject requests are propagated as HTTP requests rendered from
// per-collection templates.
//
// A processor is not a database: it cannot be asked how many rows it holds, nor
// join a transaction. So Plan reports the request that would be sent with Rows
// -1 (not counted), Apply reports Rows 1 when the processor acted and 0 when it
// answered 404 (already gone, or unknown subject), and a store's part of a
// request is made idempotent rather than atomic: every call carries an
// Idempotency-Key derived from the request, so re-applying after a partial
// failure repeats the calls and the processor deduplicates them.
//
// Receipts and errors name the request by its template (DELETE
// /v1/customers/{customerId}) and the status code; identities, rendered URLs
// and bodies (request or response) never leave this package except as the
// export returned to the caller.
//
// Every connection is dialled through Config.Network (the manager's egress
// policy), never through an environment proxy, and redirects are never
// followed. One call is bounded: Timeout per attempt, MaxAttempts, and
// MaxCallDuration for all attempts and the waits between them.
//
// With a signing key every request carries, in the signature header,
//
//	t=<unix seconds>,v1=<hex HMAC-SHA256(key, canonical)>
//
// over the canonical string
//
//	<t>\n<METHOD>\n<request URI>\n<Idempotency-Key>\n<hex SHA-256 of the body>
//
// and the timestamp alone in X-Lethe-Timestamp (see Sign). A receiver checks
// it with Verify, which refuses stale timestamps: a signature captured for one
// call cannot be replayed later, nor on another subject's path.
// docs/processors.md is the receiver's guide.
package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Config is everything a Store needs besides the data map. Secrets are resolved
// by the caller; ConfigFor fills the rest from a DataStore spec.
type Config struct {
	// BaseURL of the processor's API (from connection.secretRef): scheme, host,
	// optional path prefix; no query or fragment.
	BaseURL string
	// Authorization is sent as the Authorization header, if set, verbatim but
	// for surrounding whitespace (a Secret's trailing newline).
	Authorization string
	// SigningKey, if set, signs every request (see Sign) in SignatureHeader,
	// with its timestamp in X-Lethe-Timestamp.
	SigningKey      []byte
	SignatureHeader string // default X-Lethe-Signature

	// Collections holds each collection's request templates, by collection name
	// (the data map does not carry engine-specific templates).
	Collections map[string]privacyv1.HTTPCollection

	// Network is how the processor is reached: every connection is dialled
	// through Network.Dial (the manager's egress policy), and New refuses a
	// Network without one. With Network.RequireTLS the base URL must be https.
	Network stores.Network

	// Client sends the requests; redirects are never followed (a 3xx is an
	// error), so credentials and identities cannot be sent elsewhere. Default: a
	// client with a clone of http.DefaultTransport, TLS 1.2 or later and a
	// 10s TLS handshake timeout. Whatever the client, an *http.Transport is
	// cloned to dial only through Network.Dial, with no proxy.
	Client        *nethttp.Client
	Timeout       time.Duration // per attempt; default 10s
	MaxAttempts   int           // default 4
	BaseBackoff   time.Duration // delay before the 2nd attempt, doubled after; default 500ms
	MaxBackoff    time.Duration // default 30s
	MaxRetryAfter time.Duration // a longer wait ends the call with ErrUnavailable; default 60s
	// MaxCallDuration bounds one call: all its attempts and the waits between
	// them. When it runs out, or a wait would outlast it, the call ends with
	// ErrUnavailable and is retried on a later reconcile. Default 2m.
	MaxCallDuration time.Duration

	// Now and Sleep are injectable for tests. Sleep returns early with ctx's error.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// ConfigFor builds a Config from a DataStore spec and its resolved secrets.
func ConfigFor(spec privacyv1.DataStoreSpec, baseURL, authorization string, signingKey []byte) Config {
	cfg := Config{
		BaseURL:       baseURL,
		Authorization: authorization,
		SigningKey:    signingKey,
		Collections:   map[string]privacyv1.HTTPCollection{},
	}
	for _, c := range spec.Collections {
		if c.HTTP != nil {
			cfg.Collections[string(c.Name)] = *c.HTTP
		}
	}
	if h := spec.Connection.HTTP; h != nil {
		cfg.SignatureHeader = h.SignatureHeader
		if h.Timeout != nil {
			cfg.Timeout = h.Timeout.Duration
		}
		if h.MaxAttempts != nil {
			cfg.MaxAttempts = int(*h.MaxAttempts)
		}
	}
	return cfg
}

func (cfg *Config) setDefaults() {
	if cfg.SignatureHeader == "" {
		cfg.SignatureHeader = privacyv1.DefaultSignatureHeader
	}
	defaultDuration(&cfg.Timeout, 10*time.Second)
	defaultDuration(&cfg.BaseBackoff, 500*time.Millisecond)
	defaultDuration(&cfg.MaxBackoff, 30*time.Second)
	defaultDuration(&cfg.MaxRetryAfter, 60*time.Second)
	defaultDuration(&cfg.MaxCallDuration, DefaultMaxCallDuration)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = defaultSleep
	}
}

// DefaultMaxCallDuration is MaxCallDuration's default.
const DefaultMaxCallDuration = 2 * time.Minute

func defaultDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Store propagates requests to one processor. It is safe for concurrent use.
type Store struct {
	cfg      Config
	base     *url.URL
	client   *nethttp.Client
	m        *datamap.Map
	colls    map[string]*collection
	problems []stores.SchemaProblem
	warnings []string
}

var _ stores.Store = (*Store)(nil)

// New validates the connection settings and compiles the request templates.
// Template problems do not fail New: Check reports them all, and Plan, Apply
// and Export refuse to act while there are any.
func New(cfg Config, m *datamap.Map) (*Store, error) {
	if err := cfg.Network.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", stores.ErrInvalid, err)
	}
	cfg.setDefaults()
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", stores.ErrInvalid, err)
	}
	if cfg.Network.RequireTLS && base.Scheme != "https" {
		return nil, fmt.Errorf("%w: the operator requires TLS: the processor's base URL must be https", stores.ErrConnectionSettings)
	}
	// Secrets written with echo or --from-file often end with a newline.
	cfg.Authorization = strings.TrimSpace(cfg.Authorization)
	if strings.ContainsFunc(cfg.Authorization, isControl) {
		return nil, fmt.Errorf("%w: the authorization value holds control characters", stores.ErrInvalid)
	}
	s := &Store{cfg: cfg, base: base, client: egressClient(cfg.Client, cfg.Network), m: m}
	s.colls, s.problems = compile(m, cfg.Collections, cfg.SignatureHeader)
	if base.Scheme == "http" && !isLoopback(base.Hostname()) {
		s.warnings = append(s.warnings, "the processor's base URL is plain http: identities and credentials travel unencrypted")
	}
	return s, nil
}

// parseBaseURL accepts an absolute http(s) URL without query or fragment. Its
// errors never quote the URL, which may hold credentials.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		return nil, errors.New("the processor's base URL does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("the processor's base URL must be http or https")
	case u.Host == "":
		return nil, errors.New("the processor's base URL has no host")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, errors.New("the processor's base URL must not have a query or fragment")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return u, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Check reports template problems against the data map. It makes no network
// call: processors have no cheap, side-effect-free endpoint in common, and an
// unreachable processor surfaces as ErrUnavailable from Apply.
func (s *Store) Check(context.Context) (stores.CheckResult, error) {
	return stores.CheckResult{Problems: s.problems, Warnings: s.warnings}, nil
}

// Close releases idle connections.
func (s *Store) Close() { s.client.CloseIdleConnections() }

// step is what a request does to one collection: a call to make (op set), or a
// result decided without calling the processor.
type step struct {
	coll   *collection
	op     *operation
	vals   values
	result stores.CollectionResult
}

// steps resolves a request per collection in scope, in the order it acts
// (erasure: children first). It never calls the processor.
func (s *Store) steps(req stores.Request) ([]step, []string, error) {
	if len(s.problems) > 0 {
		return nil, nil, fmt.Errorf("%w: the data map does not fit the processor (%d problems, see the DataStore status)", stores.ErrInvalid, len(s.problems))
	}
	order := s.m.Collections
	if req.Kind == stores.KindErasure {
		order = reversed(order)
	}
	var out []step
	var heldBy []string
	for _, c := range order {
		if !req.Scope.InScope(c) {
			continue
		}
		st, hold, err := s.step(s.colls[c.Name], req)
		if err != nil {
			return nil, nil, err
		}
		if hold != "" && !slices.Contains(heldBy, hold) {
			heldBy = append(heldBy, hold)
		}
		out = append(out, st)
	}
	slices.Sort(heldBy)
	return out, heldBy, nil
}

// step decides one collection's call, or the result that needs none; hold
// names the legal hold that keeps the collection.
func (s *Store) step(coll *collection, req stores.Request) (st step, hold string, err error) {
	res := stores.CollectionResult{Collection: coll.Name, Action: actionFor(req.Kind, coll)}
	st = step{coll: coll, result: res}
	if req.Kind == stores.KindErasure {
		if r, ok, hold := retained(coll, req); ok {
			st.result = r
			return st, hold, nil
		}
	}
	op := coll.ops[req.Kind]
	if op == nil {
		st.result.Reason = fmt.Sprintf("no %s request is configured for this processor", strings.ToLower(string(req.Kind)))
		return st, "", nil
	}
	vals, missing, err := requestValues(op, coll.Collection, req)
	if err != nil {
		return step{}, "", err
	}
	if missing != "" {
		st.result.Reason = fmt.Sprintf("the subject has no %s identity; processor not called", missing)
		return st, "", nil
	}
	if op.body != nil && req.Kind == stores.KindRectification {
		if _, filled, _ := op.body.render(vals); filled == 0 {
			st.result.Reason = "no corrected value for the fields this processor maps; processor not called"
			return st, "", nil
		}
	}
	st.op, st.vals = op, vals
	st.result.Rows = -1
	st.result.Reason = "processor: " + op.String()
	return st, "", nil
}

// retained decides erasure results that need no call: a legal hold (hold
// names it), onErasure retain, or a retention exemption. Rows is -1: the
// processor's rows are not counted. A processor's rows cannot be compared
// with a hold's subject's: a subject hold keeps the collection when it may be
// the same person (stores.Hold.HoldsByIdentity).
func retained(coll *collection, req stores.Request) (res stores.CollectionResult, ok bool, hold string) {
	res = stores.CollectionResult{Collection: coll.Name, Action: stores.ActionRetain, Rows: -1}
	for _, h := range req.Holds {
		if h.Covers(coll.Name) && h.HoldsByIdentity(req.Subject) {
			res.Reason = fmt.Sprintf("legal hold %s: %s", h.Name, h.Reason)
			return res, true, h.Name
		}
	}
	if coll.OnErasure == privacyv1.ErasureRetain {
		res.Reason = coll.RetainReason
		return res, true, ""
	}
	for _, e := range req.Exemptions {
		// A processor's rows cannot be filtered by date: the whole collection is kept.
		if e.Collection == coll.Name {
			res.Reason = fmt.Sprintf("exempt from erasure for %s (%s, rule %s); the processor is not asked", e.Period, e.LegalBasis, e.Rule)
			return res, true, ""
		}
	}
	return res, false, ""
}

func actionFor(kind stores.Kind, coll *collection) stores.Action {
	switch kind {
	case stores.KindAccess:
		return stores.ActionExport
	case stores.KindRectification:
		return stores.ActionRectify
	}
	if coll.OnErasure == privacyv1.ErasureAnonymize {
		return stores.ActionAnonymize
	}
	return stores.ActionDelete
}

// requestValues gathers the identities a request needs (missing names the
// first absent type) and, for rectification, the corrected value of every
// mapped field in scope.
func requestValues(op *operation, c *datamap.Collection, req stores.Request) (values, string, error) {
	v := values{identities: map[string]string{}, fields: map[string]string{}}
	for _, t := range op.identityTypes() {
		val, ok := req.Subject[t]
		if !ok {
			return values{}, t, nil
		}
		if strings.TrimSpace(val) == "" {
			// An empty identity would address a collection endpoint, not a subject.
			return values{}, "", fmt.Errorf("%w: the subject's %s identity is empty", stores.ErrInvalid, t)
		}
		if !utf8.ValidString(val) {
			// JSON encoding would turn it into U+FFFD: someone else's identity.
			return values{}, "", fmt.Errorf("%w: the subject's %s identity is not valid UTF-8", stores.ErrInvalid, t)
		}
		v.identities[t] = val
	}
	if req.Kind == stores.KindRectification {
		for _, f := range c.Fields {
			if val, ok := req.Rectification[f.Category]; ok && req.Scope.Covers(f.Category) {
				v.fields[f.Name] = val
			}
		}
	}
	return v, "", nil
}

// Plan reports the request each collection would receive, without calling the processor.
func (s *Store) Plan(_ context.Context, req stores.Request) (stores.Result, error) {
	if err := stores.Validate(s.m, req); err != nil {
		return stores.Result{}, err
	}
	steps, heldBy, err := s.steps(req)
	if err != nil {
		return stores.Result{}, err
	}
	res := stores.Result{Held: len(heldBy) > 0, HeldBy: heldBy}
	for _, st := range steps {
		res.Collections = append(res.Collections, st.result)
	}
	return res, nil
}

// Apply sends the erasure or rectification requests. On an error the results
// of the collections done so far are returned with it; applying again repeats
// every call with the same idempotency keys.
func (s *Store) Apply(ctx context.Context, req stores.Request) (stores.Result, error) {
	if req.Kind != stores.KindErasure && req.Kind != stores.KindRectification {
		return stores.Result{}, fmt.Errorf("%w: Apply carries out erasure and rectification; %s is an export", stores.ErrInvalid, req.Kind)
	}
	if err := stores.Validate(s.m, req); err != nil {
		return stores.Result{}, err
	}
	if err := requireRequestID(req); err != nil {
		return stores.Result{}, err
	}
	steps, heldBy, err := s.steps(req)
	if err != nil {
		return stores.Result{}, err
	}
	res := stores.Result{Held: len(heldBy) > 0, HeldBy: heldBy, Repeated: true}
	for _, st := range steps {
		if st.op != nil {
			r, _, err := s.execute(ctx, req, st, false)
			if err != nil {
				return res, err
			}
			st.result = r
		}
		res.Collections = append(res.Collections, st.result)
	}
	return res, nil
}

// Export sends the access requests and returns the decoded responses,
// collected in memory from StreamExport.
func (s *Store) Export(ctx context.Context, req stores.Request) (stores.Export, stores.Result, error) {
	return stores.CollectExport(func(w stores.ExportWriter) (stores.Result, error) { return s.StreamExport(ctx, req, w) })
}

// StreamExport sends the access requests and writes each response's records
// to w, collections in name order (each response is bounded by
// maxExportBytes; w's budget bounds the whole).
func (s *Store) StreamExport(ctx context.Context, req stores.Request, w stores.ExportWriter) (stores.Result, error) {
	req.Kind = stores.KindAccess
	if err := stores.ValidateSubject(s.m, req.Subject); err != nil {
		return stores.Result{}, err
	}
	if err := requireRequestID(req); err != nil {
		return stores.Result{}, err
	}
	steps, _, err := s.steps(req)
	if err != nil {
		return stores.Result{}, err
	}
	order := make([]int, len(steps))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(steps[a].coll.Name, steps[b].coll.Name) })
	results := make([]stores.CollectionResult, len(steps))
	for i := range steps {
		results[i] = steps[i].result
	}
	for _, i := range order {
		st := steps[i]
		if st.op == nil {
			continue
		}
		r, rows, err := s.execute(ctx, req, st, true)
		if err != nil {
			return stores.Result{Collections: done(results, order, i)}, err
		}
		results[i] = r
		for _, row := range rows {
			if err := w.Row(st.coll.Name, row); err != nil {
				return stores.Result{Collections: done(results, order, i)}, err
			}
		}
	}
	return stores.Result{Collections: results}, nil
}

// done are the results of the steps sent before the one at stop, in the
// steps' order.
func done(results []stores.CollectionResult, order []int, stop int) []stores.CollectionResult {
	sent := map[int]bool{}
	for _, i := range order {
		if i == stop {
			break
		}
		sent[i] = true
	}
	var out []stores.CollectionResult
	for i, r := range results {
		if sent[i] {
			out = append(out, r)
		}
	}
	return out
}

func requireRequestID(req stores.Request) error {
	if req.RequestID == "" {
		return fmt.Errorf("%w: the request has no RequestID to derive idempotency keys from", stores.ErrInvalid)
	}
	return nil
}

// execute sends one step's request and turns the answer into its result (and,
// for access, the exported records).
func (s *Store) execute(ctx context.Context, req stores.Request, st step, wantBody bool) (stores.CollectionResult, []map[string]any, error) {
	c, err := s.render(req, st)
	if err != nil {
		return stores.CollectionResult{}, nil, err
	}
	c.wantBody = wantBody
	resp, err := s.send(ctx, c)
	if err != nil {
		return stores.CollectionResult{}, nil, err
	}
	res := st.result
	switch {
	case st.op.succeeded(resp.status):
		res.Rows = 1
		res.Reason = fmt.Sprintf("processor answered %d to %s", resp.status, st.op)
	case resp.status == nethttp.StatusNotFound && st.op.notFoundAbsent:
		res.Rows = 0
		res.Reason = fmt.Sprintf("processor answered 404 to %s: it holds nothing of the subject", st.op)
		return res, nil, nil
	default:
		return stores.CollectionResult{}, nil, statusError(st.op, resp.status)
	}
	if !wantBody {
		return res, nil, nil
	}
	rows, err := decodeExport(resp.body)
	if err != nil {
		return stores.CollectionResult{}, nil, fmt.Errorf("%w: %s: %w", stores.ErrInvalid, st.op, err)
	}
	res.Rows = int64(len(rows))
	return res, rows, nil
}

// statusError classifies a final, unexpected status: credentials problems may
// be fixed by updating a Secret (unavailable), anything else needs a change to
// the templates (invalid).
func statusError(op *operation, status int) error {
	switch {
	case status == nethttp.StatusUnauthorized || status == nethttp.StatusForbidden:
		return fmt.Errorf("%w: %s: processor refused the credentials (status %d)", stores.ErrUnavailable, op, status)
	case status >= 300 && status < 400:
		return fmt.Errorf("%w: %s: unexpected status %d (redirects are not followed)", stores.ErrInvalid, op, status)
	default:
		return fmt.Errorf("%w: %s: unexpected status %d", stores.ErrInvalid, op, status)
	}
}

// render builds the URL and body of one step's request.
func (s *Store) render(req stores.Request, st step) (call, error) {
	uri, err := st.op.path.render(st.vals)
	if err != nil {
		return call{}, fmt.Errorf("%w: %s: rendering the path failed", stores.ErrInvalid, st.op)
	}
	target, err := url.Parse(s.base.String() + uri)
	if err != nil || target.Scheme != s.base.Scheme || target.Host != s.base.Host {
		return call{}, fmt.Errorf("%w: %s: the rendered URL does not parse", stores.ErrInvalid, st.op)
	}
	c := call{op: st.op, url: target.String(), idemKey: IdempotencyKey(req.RequestID, st.coll.Name, req.Kind)}
	if st.op.body != nil {
		if c.body, _, err = st.op.body.render(st.vals); err != nil {
			return call{}, fmt.Errorf("%w: %s: %w", stores.ErrInvalid, st.op, err)
		}
	}
	return c, nil
}

// decodeExport turns an access response into records: an object is one
// record, an array one per element (other elements become {"value": e}), and
// an empty body or null none.
func decodeExport(body []byte) ([]map[string]any, error) {
	if len(body) > maxExportBytes {
		return nil, fmt.Errorf("the response is larger than %d MiB", maxExportBytes>>20)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil || dec.More() {
		return nil, errors.New("the response is not one JSON document")
	}
	switch doc := doc.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return []map[string]any{doc}, nil
	case []any:
		rows := make([]map[string]any, 0, len(doc))
		for _, e := range doc {
			rows = append(rows, record(e))
		}
		return rows, nil
	default:
		return []map[string]any{record(doc)}, nil
	}
}

func record(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{"value": v}
}

func reversed(cs []*datamap.Collection) []*datamap.Collection {
	out := make([]*datamap.Collection, len(cs))
	for i, c := range cs {
		out[len(cs)-1-i] = c
	}
	return out
}
