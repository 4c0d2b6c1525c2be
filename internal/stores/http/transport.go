package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lethe-dev/lethe/internal/stores"
)

const (
	// maxExportBytes bounds an access response read into memory.
	maxExportBytes = 16 << 20
	// maxDrainBytes is read from other responses so the connection can be reused.
	maxDrainBytes = 64 << 10
)

// call is one rendered request. url and body hold personal data: they are
// sent, never logged nor put in errors; desc (the template) is used instead.
type call struct {
	op       *operation
	url      string
	body     []byte // nil: no body
	idemKey  string
	wantBody bool // read the response body (access)
}

// response is what the processor answered. body is read only when asked for.
type response struct {
	status int
	body   []byte
}

// send makes the call, retrying 408, 409, 425, 429, 5xx (except 501 and 505)
// and network errors with exponential backoff or the server's Retry-After, up
// to MaxAttempts and within MaxCallDuration (all attempts and the waits between
// them). The same bytes and Idempotency-Key go out on every attempt, so the
// processor can deduplicate; each attempt is signed afresh (new timestamp).
// Running out of attempts or time is ErrUnavailable; an address the egress
// policy refuses is ErrInvalid at once, never retried.
func (s *Store) send(ctx context.Context, c call) (response, error) {
	callCtx, cancel := context.WithTimeout(ctx, s.cfg.MaxCallDuration)
	defer cancel()
	// stopped classifies a call cut short by its context: the caller's
	// cancellation, or the call's own time budget.
	stopped := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s: %w", stores.ErrUnavailable, c.op, ctx.Err())
		}
		return fmt.Errorf("%w: %s: %s (%w)", stores.ErrUnavailable, c.op, s.budgetMessage(), err)
	}
	var last string
	for attempt := 1; ; attempt++ {
		resp, retryAfter, err := s.attempt(callCtx, c)
		if refused := stores.EgressRefusal(err); refused != nil {
			// Names the address class only; no retry reaches a refused address.
			return response{}, refused
		}
		if err == nil && !retryableStatus(resp.status) {
			// A complete answer stands even if the deadline passed just after it.
			return resp, nil
		}
		if callCtx.Err() != nil {
			return response{}, stopped(callCtx.Err())
		}
		if err != nil {
			last = describeNetError(err)
		} else {
			last = fmt.Sprintf("status %d", resp.status)
		}
		if attempt >= s.cfg.MaxAttempts {
			return response{}, fmt.Errorf("%w: %s: %d attempts, last: %s", stores.ErrUnavailable, c.op, attempt, last)
		}
		wait := s.backoff(attempt)
		if retryAfter >= 0 {
			wait = retryAfter
		}
		if wait > s.cfg.MaxRetryAfter {
			// Do not hold a worker that long: the request is retried on a later reconcile.
			return response{}, fmt.Errorf("%w: %s: %s, processor asked to retry after %s", stores.ErrUnavailable, c.op, last, wait.Round(time.Second))
		}
		if deadline, ok := callCtx.Deadline(); ok && wait >= time.Until(deadline) {
			// Sleeping would only run into the deadline: end now, retry on a later reconcile.
			return response{}, fmt.Errorf("%w: %s: %d attempts, last: %s; %s before the next attempt (in %s)",
				stores.ErrUnavailable, c.op, attempt, last, s.budgetMessage(), wait.Round(time.Millisecond))
		}
		if err := s.cfg.Sleep(callCtx, wait); err != nil {
			return response{}, stopped(err)
		}
	}
}

// budgetMessage says the call ran out of its MaxCallDuration.
func (s *Store) budgetMessage() string {
	return fmt.Sprintf("the call's total time limit of %s was reached", s.cfg.MaxCallDuration)
}

// attempt sends the call once, under the per-attempt timeout. retryAfter is
// negative when the response did not ask for a delay.
func (s *Store) attempt(ctx context.Context, c call) (response, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := s.newRequest(ctx, c)
	if err != nil {
		return response{}, -1, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return response{}, -1, err
	}
	defer resp.Body.Close()
	out := response{status: resp.StatusCode}
	if c.wantBody && resp.StatusCode < 300 {
		// The body is read under the attempt's timeout, so it is part of the attempt.
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxExportBytes+1))
		if err != nil {
			return response{}, -1, err
		}
		out.body = body
	} else {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
	}
	return out, s.retryAfter(resp), nil
}

// newRequest builds the request with every header Lethe sets.
func (s *Store) newRequest(ctx context.Context, c call) (*nethttp.Request, error) {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := nethttp.NewRequestWithContext(ctx, c.op.method, c.url, body)
	if err != nil {
		return nil, errors.New("building the request failed")
	}
	req.Header.Set("User-Agent", "lethe")
	req.Header.Set("Accept", "application/json")
	for name, vs := range c.op.headers {
		req.Header[name] = vs
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Idempotency-Key", c.idemKey)
	if s.cfg.Authorization != "" {
		req.Header.Set("Authorization", s.cfg.Authorization)
	}
	if len(s.cfg.SigningKey) > 0 {
		// Signed per attempt: the timestamp is the attempt's, the request URI
		// exactly what goes on the request line.
		t := s.cfg.Now()
		req.Header.Set(s.cfg.SignatureHeader, Sign(s.cfg.SigningKey, t, req.Method, req.URL.RequestURI(), c.idemKey, c.body))
		req.Header.Set(TimestampHeader, strconv.FormatInt(t.Unix(), 10))
	}
	return req, nil
}

// IdempotencyKey derives the Idempotency-Key of one request to one collection:
// stable across attempts and reconciles, distinct per collection and kind, and
// a hash, so it reveals neither the request nor the subject.
func IdempotencyKey(requestID, collection string, kind stores.Kind) string {
	h := sha256.New()
	for _, s := range []string{"lethe/idempotency/v1", requestID, collection, string(kind)} {
		// Length prefixes keep ("ab","c") and ("a","bc") apart.
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func retryableStatus(status int) bool {
	switch status {
	case nethttp.StatusRequestTimeout, nethttp.StatusConflict, nethttp.StatusTooEarly, nethttp.StatusTooManyRequests:
		return true
	case nethttp.StatusNotImplemented, nethttp.StatusHTTPVersionNotSupported:
		return false
	}
	return status >= 500 && status < 600
}

// backoff is the delay before attempt+1: BaseBackoff doubled per attempt, capped.
func (s *Store) backoff(attempt int) time.Duration {
	d := s.cfg.BaseBackoff
	for i := 1; i < attempt && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxBackoff)
}

// retryAfter reads Retry-After as delay-seconds or an HTTP date; -1 if absent or invalid.
func (s *Store) retryAfter(resp *nethttp.Response) time.Duration {
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return -1
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return -1
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second) // avoids overflow; far above MaxRetryAfter anyway
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := nethttp.ParseTime(v); err == nil {
		return max(t.Sub(s.cfg.Now()), 0)
	}
	return -1
}

// describeNetError names a transport error without its text: net/http errors
// carry the full URL, which holds identities.
func describeNetError(err error) string {
	var netErr net.Error
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.As(err, &dnsErr):
		return "DNS lookup failed"
	case errors.As(err, &certErr) || errors.As(err, &unknownAuthority) || errors.As(err, &recordErr):
		return "TLS verification failed"
	default:
		return "network error"
	}
}

// defaultSleep waits d or until ctx ends.
func defaultSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
