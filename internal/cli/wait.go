package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// pollInterval is how often --wait reads the request.
const pollInterval = time.Second

// isComplete is the controller's test: a completion time and Ready=True.
func isComplete(dsr *privacyv1.DataSubjectRequest) bool {
	return dsr.Status.CompletionTime != nil && apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionReady)
}

func readyCondition(dsr *privacyv1.DataSubjectRequest) *metav1.Condition {
	return apimeta.FindStatusCondition(dsr.Status.Conditions, privacyv1.ConditionReady)
}

// stalled is the Stalled condition when it is True for the current spec.
func stalled(dsr *privacyv1.DataSubjectRequest) *metav1.Condition {
	c := apimeta.FindStatusCondition(dsr.Status.Conditions, privacyv1.ConditionStalled)
	if c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == dsr.Generation {
		return c
	}
	return nil
}

// waitForRequest polls the request until it is complete, stalled, or the
// timeout has passed (the last read is made at the timeout). On a terminal,
// progress gets one line per change. A failed read is retried until the
// timeout, unless the request is gone.
func waitForRequest(ctx context.Context, c client.Client, key client.ObjectKey, timeout time.Duration, progress io.Writer) (*privacyv1.DataSubjectRequest, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	last := ""
	var readErr error
	dsr := &privacyv1.DataSubjectRequest{}
	for {
		getCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c.Get(getCtx, key, dsr)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("request %s was deleted while waiting for it", key.Name)
		case err != nil:
			readErr = err
		default:
			readErr = nil
			if isComplete(dsr) {
				return dsr, nil
			}
			if s := stalled(dsr); s != nil {
				return nil, fmt.Errorf("request %s is stalled (%s): %s; see kubectl lethe status %s -n %s",
					key.Name, s.Reason, s.Message, key.Name, key.Namespace)
			}
			if progress != nil {
				if line := progressLine(dsr); line != last {
					fmt.Fprintf(progress, "[%4ds] %s\n", int(time.Since(start).Seconds()), line)
					last = line
				}
			}
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, timedOut(key, timeout, dsr, readErr)
		}
		t := time.NewTimer(min(pollInterval, remaining))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func timedOut(key client.ObjectKey, timeout time.Duration, dsr *privacyv1.DataSubjectRequest, readErr error) error {
	state := "no status yet"
	if r := readyCondition(dsr); r != nil {
		state = fmt.Sprintf("Ready=%s, %s: %s", r.Status, r.Reason, r.Message)
	}
	if readErr != nil {
		state += fmt.Sprintf("; the last read failed: %v", readErr)
	}
	return fmt.Errorf("timed out after %s waiting for request %s (%s); Lethe goes on with it: kubectl lethe status %s -n %s",
		timeout, key.Name, state, key.Name, key.Namespace)
}

// progressLine is the request's state in one line: the Ready reason, the
// stores done, holds, and the Ready message.
func progressLine(dsr *privacyv1.DataSubjectRequest) string {
	r := readyCondition(dsr)
	if r == nil {
		return "waiting for the controller"
	}
	line := fmt.Sprintf("%s: %s store(s) done", r.Reason, storesDone(dsr))
	if h := holds(dsr); len(h) > 0 {
		line += ", held by " + strings.Join(h, ", ")
	}
	if r.Message != "" {
		line += " — " + r.Message
	}
	return line
}

// storesDone is "done/total", or "0/?" before the stores are known.
func storesDone(dsr *privacyv1.DataSubjectRequest) string {
	if len(dsr.Status.Stores) == 0 {
		return "0/?"
	}
	done := 0
	for _, s := range dsr.Status.Stores {
		if s.Phase == privacyv1.StoreCompleted {
			done++
		}
	}
	return fmt.Sprintf("%d/%d", done, len(dsr.Status.Stores))
}

// holds names the LegalHolds keeping some of the subject's rows, sorted.
func holds(dsr *privacyv1.DataSubjectRequest) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range dsr.Status.Stores {
		for _, h := range s.HeldBy {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
