package http

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/storetest"
	"github.com/lethe-dev/lethe/internal/testdb"
)

func TestConformance(t *testing.T) {
	storetest.Suite{
		Name: "http",
		Open: openRecords,
		Unsupported: storetest.Features{
			storetest.HoldsByRows:   "a processor's records cannot be compared with a hold's: a subject hold keeps the collection whenever it may be the same person (stores.Hold.HoldsByIdentity)",
			storetest.Journal:       "a processor keeps no Lethe journal: each call's result is kept in the request's status as it happens",
			storetest.Verification:  "Lethe cannot read a processor's records back to check them: the receipt counts the calls that acted",
			storetest.References:    "a processor's records are found by the identities a request sends: its endpoints have no references between them",
			storetest.AnyIdentity:   "a request template sends every identity it names: a call needs all of them, never one of several",
			storetest.RowCounts:     "a processor is not a database: Plan cannot count its records (-1), Apply reports 1 per call that acted and 0 for a 404",
			storetest.Anonymize:     "a processor erases through its own API: Lethe sends the call and cannot mask the processor's fields",
			storetest.Exemptions:    "a processor's records carry no date Lethe can read before calling: an exempt collection is kept whole, without a call (engine test)",
			storetest.Atomic:        "calls to a processor cannot be rolled back: a store's part is made idempotent instead, with an Idempotency-Key (engine tests)",
			storetest.MappedExport:  "the processor's answer is exported as it is: Lethe does not know the shape of its records",
			storetest.Schema:        "a processor has no schema: Check validates the request templates (engine tests)",
			storetest.Sweeps:        "a processor keeps its own retention: the engine is no stores.Sweeper",
			storetest.Locks:         "a processor has no row locks Lethe could meet",
			storetest.LargeSubjects: "a processor erases a subject's records with one call per endpoint: Lethe never lists them",
		},
		Texts: storetest.Texts{
			Refusals: map[string]string{
				"access applied": "Access is an export",
			},
		},
	}.Run(t)
}

// records is a processor on loopback that holds the fixture's records, as
// a REST API: DELETE, GET and PATCH /<collection>/<identity> act on the
// records whose identity field equals the (unescaped) path segment, and
// answer 404 when there are none.
type records struct {
	mu   sync.Mutex
	f    storetest.Fixture
	data map[string]map[string]map[string]any // collection -> key -> field -> JSON value
	// field is the identity field of each collection.
	field map[string]string
}

// harness is the fixture as a processor's records.
type harness struct {
	f     storetest.Fixture
	p     *records
	url   string
	store stores.Store
}

func openRecords(t *testing.T, f storetest.Fixture) storetest.Harness {
	t.Helper()
	p := &records{f: f, data: map[string]map[string]map[string]any{}, field: map[string]string{}}
	h := &harness{f: f, p: p}
	for _, c := range f.Collections() {
		name := string(c.Spec.Name)
		p.data[name] = map[string]map[string]any{}
		_, p.field[name] = identityOf(t, c.Spec)
		for i, row := range c.Rows {
			rec := map[string]any{}
			for j, col := range c.Columns {
				rec[col] = f.Canonical(row[j])
			}
			rec["balance"] = "12.50" // the processor's own, unmapped
			p.data[name][h.Key(name, c.Key(i))] = rec
		}
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	h.store = h.Open(t, f.Spec(), storetest.MaskingKey)
	return h
}

func identityOf(t storetest.T, c privacyv1.Collection) (typ, field string) {
	t.Helper()
	if len(c.Identity) != 1 {
		t.Fatalf("collection %s: a request template here sends one identity, the map has %d", c.Name, len(c.Identity))
	}
	for typ, col := range c.Identity {
		return typ, string(col)
	}
	return "", ""
}

func (p *records) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if len(parts) != 2 {
		nethttp.Error(w, "no such endpoint", nethttp.StatusBadRequest)
		return
	}
	collection, err1 := url.PathUnescape(parts[0])
	identity, err2 := url.PathUnescape(parts[1])
	p.mu.Lock()
	defer p.mu.Unlock()
	recs, ok := p.data[collection]
	if err1 != nil || err2 != nil || !ok {
		nethttp.Error(w, "no such endpoint", nethttp.StatusBadRequest)
		return
	}
	var found []string
	for k, rec := range recs {
		if fmt.Sprint(rec[p.field[collection]]) == identity {
			found = append(found, k)
		}
	}
	if len(found) == 0 {
		nethttp.Error(w, `{"error": "not found"}`, nethttp.StatusNotFound)
		return
	}
	switch r.Method {
	case nethttp.MethodDelete:
		for _, k := range found {
			delete(recs, k)
		}
	case nethttp.MethodGet:
		var out []map[string]any
		for _, k := range found {
			out = append(out, recs[k])
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	case nethttp.MethodPatch:
		body, _ := io.ReadAll(r.Body)
		var set map[string]any
		if err := json.Unmarshal(body, &set); err != nil {
			nethttp.Error(w, "not JSON", nethttp.StatusBadRequest)
			return
		}
		for _, k := range found {
			for f, v := range set {
				recs[k][f] = v
			}
		}
	default:
		nethttp.Error(w, "method not allowed", nethttp.StatusMethodNotAllowed)
		return
	}
	_, _ = io.WriteString(w, `{"ok": true}`)
}

// templates are each collection's requests: erasure (unless retained),
// access, and rectification of its mapped fields.
func templates(t storetest.T, c privacyv1.Collection) *privacyv1.HTTPCollection {
	typ, _ := identityOf(t, c)
	path := fmt.Sprintf("/%s/{%s}", c.Name, typ)
	h := &privacyv1.HTTPCollection{Access: &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPGet, Path: path}}
	if c.OnErasure != privacyv1.ErasureRetain {
		h.Erasure = &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPDelete, Path: path}
	}
	if len(c.Fields) > 0 {
		var members []string
		for _, f := range c.Fields {
			members = append(members, fmt.Sprintf(`%q: "{fields.%s}"`, f.Name, f.Name))
		}
		h.Rectification = &privacyv1.HTTPRequestTemplate{Method: privacyv1.HTTPPatch, Path: path, Body: rawJSON("{" + strings.Join(members, ", ") + "}")}
	}
	return h
}

func (h *harness) Store() stores.Store { return h.store }

func (h *harness) Open(t storetest.T, spec privacyv1.DataStoreSpec, _ []byte) stores.Store {
	t.Helper()
	spec.Engine = privacyv1.EngineHTTP
	spec.Connection = privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: "processor", Key: "url"}}
	for i := range spec.Collections {
		spec.Collections[i].HTTP = templates(t, spec.Collections[i])
	}
	return storetest.OpenStore(t, spec, func(m *datamap.Map) (stores.Store, error) {
		cfg := ConfigFor(spec, h.url, testAuthorization, testSigningKey)
		cfg.Network = testdb.Loopback
		return New(cfg, m)
	})
}

// Snapshot is the processor's records, values as text.
func (h *harness) Snapshot(storetest.T) storetest.Snapshot {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	snap := storetest.Snapshot{}
	for c, recs := range h.p.data {
		snap[c] = map[string]storetest.Row{}
		for k, rec := range recs {
			row := storetest.Row{}
			for f, v := range rec {
				if v != nil {
					row[f] = fmt.Sprint(v)
				}
			}
			snap[c][k] = row
		}
	}
	return snap
}

func (h *harness) Key(_ string, key any) string {
	if b, ok := key.([]byte); ok {
		return hex.EncodeToString(b)
	}
	return h.f.KeyText(key)
}

func (h *harness) MaskingRowKey(_, key string) string { return key }

// ExportRow: the processor's JSON numbers, decoded as json.Number, are
// integers here.
func (h *harness) ExportRow(_ string, row map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range row {
		if n, ok := v.(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				v = i
			}
		}
		out[k] = v
	}
	return out
}
