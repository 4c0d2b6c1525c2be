package http

import (
	"fmt"
	nethttp "net/http"
	"regexp"
	"slices"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// operation is one compiled request template.
type operation struct {
	kind           stores.Kind
	method         string
	path           pathTemplate
	headers        nethttp.Header
	body           *bodyTemplate // nil: no body
	success        []int         // empty: any 2xx
	notFoundAbsent bool
}

// String is the request as a template, safe for receipts and errors:
// "DELETE /v1/customers/{customerId}".
func (o *operation) String() string { return o.method + " " + o.path.String() }

// identityTypes lists the identity types the request needs.
func (o *operation) identityTypes() []string {
	var types []string
	o.visit(func(p part) {
		if !p.field && !slices.Contains(types, p.name) {
			types = append(types, p.name)
		}
	})
	slices.Sort(types)
	return types
}

func (o *operation) visit(f func(part)) {
	o.path.visit(f)
	if o.body != nil {
		o.body.visit(f)
	}
}

func (o *operation) succeeded(status int) bool {
	if len(o.success) == 0 {
		return status >= 200 && status < 300
	}
	return slices.Contains(o.success, status)
}

// collection is a data-map collection with its compiled requests.
type collection struct {
	*datamap.Collection
	ops map[stores.Kind]*operation
}

var headerToken = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")

// reservedHeaders are set by Lethe (or by net/http) and cannot be templated.
var reservedHeaders = []string{
	"Authorization", "Idempotency-Key", "Content-Type", "Content-Length", "Host",
	"Connection", "Transfer-Encoding", "Te", "Upgrade", "Trailer", "Keep-Alive", "Proxy-Authorization",
	TimestampHeader,
}

// metadataHeaders are what cloud metadata services require of a caller (GCP,
// Azure, AWS IMDSv2): a processor never needs them, and with them a request
// that reached a metadata address would be answered.
var metadataHeaders = []string{
	"Metadata-Flavor", "Metadata", "X-aws-ec2-metadata-token", "X-aws-ec2-metadata-token-ttl-seconds", "X-Google-Metadata-Request",
}

// compile turns every collection's templates into operations, and reports every
// way they do not fit the data map. Problems are Check's schema problems: a
// store with any refuses to act, rather than skip a collection silently.
func compile(m *datamap.Map, specs map[string]privacyv1.HTTPCollection, signatureHeader string) (map[string]*collection, []stores.SchemaProblem) {
	colls := map[string]*collection{}
	var problems []stores.SchemaProblem
	for _, c := range m.Collections {
		report := func(format string, args ...any) {
			problems = append(problems, stores.SchemaProblem{Collection: c.Name, Problem: fmt.Sprintf(format, args...)})
		}
		coll := &collection{Collection: c, ops: map[stores.Kind]*operation{}}
		colls[c.Name] = coll
		if len(c.Parents)+len(c.Children)+len(c.Referrers) > 0 {
			report("references are not supported by the http engine: a processor is reached by identity only")
		}
		if len(c.Identity) == 0 {
			report("maps no identity: a processor request needs an identity placeholder")
		}
		spec, ok := specs[c.Name]
		if !ok {
			report("has no http request templates")
			continue
		}
		templates := []struct {
			kind stores.Kind
			name string
			t    *privacyv1.HTTPRequestTemplate
		}{
			{stores.KindAccess, "access", spec.Access},
			{stores.KindErasure, "erasure", spec.Erasure},
			{stores.KindRectification, "rectification", spec.Rectification},
		}
		for _, t := range templates {
			if t.t == nil {
				continue
			}
			op, msgs := compileOperation(t.kind, t.t, c, signatureHeader)
			for _, msg := range msgs {
				report("http.%s: %s", t.name, msg)
			}
			if len(msgs) == 0 {
				coll.ops[t.kind] = op
			}
		}
		if spec.Erasure == nil && c.OnErasure != privacyv1.ErasureRetain {
			report("onErasure is %s but http.erasure is not set: set it, or use onErasure retain with a reason", c.OnErasure)
		}
	}
	return colls, problems
}

// compileOperation parses one template and checks it against its collection.
func compileOperation(kind stores.Kind, t *privacyv1.HTTPRequestTemplate, c *datamap.Collection, signatureHeader string) (*operation, []string) {
	var msgs []string
	op := &operation{kind: kind, method: string(t.Method), headers: nethttp.Header{}, notFoundAbsent: true}
	if t.NotFoundMeansAbsent != nil {
		op.notFoundAbsent = *t.NotFoundMeansAbsent
	}
	switch t.Method {
	case privacyv1.HTTPGet, privacyv1.HTTPPost, privacyv1.HTTPPut, privacyv1.HTTPPatch, privacyv1.HTTPDelete:
	default:
		msgs = append(msgs, fmt.Sprintf("method %q is not one of GET, POST, PUT, PATCH, DELETE", t.Method))
	}
	if kind == stores.KindAccess && t.Method != privacyv1.HTTPGet && t.Method != privacyv1.HTTPPost {
		msgs = append(msgs, "the access request must be a GET or a POST")
	}
	parsed := true
	var err error
	if op.path, err = parsePath(t.Path); err != nil {
		msgs = append(msgs, "path: "+err.Error())
		parsed = false
	}
	if t.Body != nil {
		if t.Method == privacyv1.HTTPGet {
			msgs = append(msgs, "a GET request cannot have a body")
		}
		if op.body, err = parseBody(t.Body.Raw); err != nil {
			msgs = append(msgs, "body: "+err.Error())
			parsed = false
		}
	}
	if parsed { // placeholders of a template that does not parse are unknown
		msgs = append(msgs, checkPlaceholders(kind, op, c)...)
	}
	msgs = append(msgs, compileHeaders(t.Headers, op.headers, signatureHeader)...)
	for _, s := range t.SuccessStatuses {
		if s < 200 || s > 599 {
			msgs = append(msgs, fmt.Sprintf("success status %d is not between 200 and 599", s))
		}
		op.success = append(op.success, int(s))
	}
	return op, msgs
}

// checkPlaceholders makes sure every identity placeholder is mapped, field
// placeholders appear only in a rectification body and name mapped fields, and
// the request addresses one subject (uses an identity).
func checkPlaceholders(kind stores.Kind, op *operation, c *datamap.Collection) []string {
	var msgs []string
	identities := 0
	op.path.visit(func(p part) {
		if p.field {
			msgs = append(msgs, fmt.Sprintf("path: {%s%s} is only allowed in a rectification body", fieldPrefix, p.name))
		}
	})
	op.visit(func(p part) {
		switch {
		case !p.field:
			identities++
			if _, ok := c.Identity[p.name]; !ok {
				msgs = append(msgs, fmt.Sprintf("placeholder {%s} is not an identity type this collection maps", p.name))
			}
		case kind != stores.KindRectification:
			msgs = append(msgs, fmt.Sprintf("placeholder {%s%s} is only allowed in a rectification body", fieldPrefix, p.name))
		default:
			if _, ok := c.Field(p.name); !ok {
				msgs = append(msgs, fmt.Sprintf("placeholder {%s%s} is not a mapped field of this collection", fieldPrefix, p.name))
			}
		}
	})
	if identities == 0 {
		msgs = append(msgs, "the request uses no identity placeholder, so it would not address one subject")
	}
	if kind == stores.KindRectification && !usesFields(op) {
		msgs = append(msgs, "the rectification body uses no {fields.name} placeholder, so it cannot carry corrected values")
	}
	return msgs
}

func usesFields(op *operation) bool {
	found := false
	op.visit(func(p part) { found = found || p.field })
	return found
}

// compileHeaders copies the static headers into h, refusing those Lethe sets
// and cloud metadata headers.
func compileHeaders(in map[string]privacyv1.HTTPHeaderValue, h nethttp.Header, signatureHeader string) []string {
	var msgs []string
	reserved := append(slices.Clone(reservedHeaders), signatureHeader)
	for name, value := range in {
		switch {
		case !headerToken.MatchString(name):
			msgs = append(msgs, fmt.Sprintf("header name %q is not an HTTP token", name))
		case slices.ContainsFunc(reserved, func(r string) bool { return strings.EqualFold(r, name) }):
			msgs = append(msgs, fmt.Sprintf("header %s is set by Lethe", name))
		case slices.ContainsFunc(metadataHeaders, func(r string) bool { return strings.EqualFold(r, name) }):
			msgs = append(msgs, fmt.Sprintf("header %s: cloud metadata headers are refused: a processor never needs them", name))
		case strings.ContainsAny(string(value), "\r\n\x00"):
			msgs = append(msgs, fmt.Sprintf("header %s must be one line", name))
		default:
			h.Set(name, string(value))
		}
	}
	slices.Sort(msgs) // map order would make Check's output flap
	return msgs
}
