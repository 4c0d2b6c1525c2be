package http

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	nethttp "net/http"
	"strconv"
	"strings"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// TimestampHeader carries the signature's timestamp (Unix seconds) on its
// own, so a receiver can refuse a stale request before checking the HMAC.
const TimestampHeader = "X-Lethe-Timestamp"

// DefaultTolerance is the clock skew and delivery delay a receiver should
// accept between a request's timestamp and its own clock. Verify uses it when
// given a tolerance of zero or less.
const DefaultTolerance = 5 * time.Minute

// ErrSignature is wrapped by every refusal of Verify.
var ErrSignature = errors.New("lethe signature refused")

// signatureScheme names the version of the canonical string in the header.
const signatureScheme = "v1"

// canonical is the string signed: timestamp, method, request URI (escaped path
// and query, as on the request line), Idempotency-Key and the body's SHA-256,
// one per line. Each element is fixed-format or cannot hold a newline (the
// request URI is escaped, the key is a header value), so the lines cannot be
// shifted into one another.
func canonical(t int64, method, requestURI, idempotencyKey string, body []byte) string {
	sum := sha256.Sum256(body)
	return strconv.FormatInt(t, 10) + "\n" + method + "\n" + requestURI + "\n" + idempotencyKey + "\n" + hex.EncodeToString(sum[:])
}

func mac(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign is the signature header value of one request:
//
//	t=<unix seconds>,v1=<hex HMAC-SHA256(key, canonical)>
//
// where canonical is
//
//	<t>\n<METHOD>\n<request URI>\n<Idempotency-Key>\n<hex SHA-256 of the body>
//
// requestURI is the escaped path with its query, exactly as on the request
// line (the base URL's path prefix included); a request without a body hashes
// the empty string. The signature binds the call: replayed later, on another
// path or subject, or with another body, it no longer verifies.
func Sign(key []byte, t time.Time, method, requestURI, idempotencyKey string, body []byte) string {
	ts := t.Unix()
	return fmt.Sprintf("t=%d,%s=%s", ts, signatureScheme, mac(key, canonical(ts, method, requestURI, idempotencyKey, body)))
}

// Verify checks, on the receiving side, the signature Lethe put in the
// default header (X-Lethe-Signature) of r, whose body the receiver has read
// into body. It refuses a missing or malformed header, a timestamp further
// than tolerance from now (in the past or the future), a timestamp header
// that disagrees with the signed one, and a signature that does not match
// (compared in constant time). A tolerance of zero or less is DefaultTolerance.
func Verify(key []byte, r *nethttp.Request, body []byte, now time.Time, tolerance time.Duration) error {
	return VerifyHeader(key, privacyv1.DefaultSignatureHeader, r, body, now, tolerance)
}

// VerifyHeader is Verify for a DataStore that sets connection.http.signatureHeader.
func VerifyHeader(key []byte, header string, r *nethttp.Request, body []byte, now time.Time, tolerance time.Duration) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: no signing key", ErrSignature)
	}
	value := r.Header.Get(header)
	if value == "" {
		return fmt.Errorf("%w: the request has no %s header", ErrSignature, header)
	}
	ts, sigs, err := parseSignature(value)
	if err != nil {
		return err
	}
	if h := r.Header.Get(TimestampHeader); h != "" && h != strconv.FormatInt(ts, 10) {
		return fmt.Errorf("%w: %s does not match the signed timestamp", ErrSignature, TimestampHeader)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if age := now.Sub(time.Unix(ts, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: the timestamp is %s away from now, more than the %s tolerated", ErrSignature, age.Abs().Round(time.Second), tolerance)
	}
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		// A request built by a client (no request line), or an absolute-form target.
		uri = r.URL.RequestURI()
	}
	want := []byte(mac(key, canonical(ts, r.Method, uri, r.Header.Get("Idempotency-Key"), body)))
	ok := false
	for _, s := range sigs {
		// Every candidate is compared, so the time taken does not say which matched.
		if hmac.Equal(want, []byte(s)) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w: the signature does not match the request", ErrSignature)
	}
	return nil
}

// parseSignature reads t=<unix>,v1=<hex>[,v1=<hex>...]; other schemes are
// ignored, so a later version can be sent alongside v1.
func parseSignature(value string) (int64, []string, error) {
	var (
		ts    int64
		haveT bool
		sigs  []string
	)
	for _, item := range strings.Split(value, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return 0, nil, fmt.Errorf("%w: the signature header is malformed", ErrSignature)
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || haveT {
				return 0, nil, fmt.Errorf("%w: the signature header's timestamp is malformed", ErrSignature)
			}
			ts, haveT = n, true
		case signatureScheme:
			sigs = append(sigs, v)
		}
	}
	if !haveT || len(sigs) == 0 {
		return 0, nil, fmt.Errorf("%w: the signature header lacks t= or %s=", ErrSignature, signatureScheme)
	}
	return ts, sigs, nil
}
