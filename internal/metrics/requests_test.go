package metrics

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// series gathers c alone and renders each series as name{labels} value
// (histograms: their sample count and sum), sorted.
func series(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			name := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Histogram != nil:
				out = append(out, fmt.Sprintf("%s count=%d sum=%g", name, m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum()))
			case m.Counter != nil:
				out = append(out, fmt.Sprintf("%s %g", name, m.Counter.GetValue()))
			case m.Gauge != nil:
				out = append(out, fmt.Sprintf("%s %g", name, m.Gauge.GetValue()))
			}
		}
	}
	sort.Strings(out)
	return out
}

func expectSeries(t *testing.T, c prometheus.Collector, prefix string, want ...string) {
	t.Helper()
	var got []string
	for _, s := range series(t, c) {
		if strings.Contains(s, prefix) {
			got = append(got, s)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("series with %s:\n%s\nwant:\n%s", prefix, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestOpenRequestsAreCountedPerStateAndForgotten(t *testing.T) {
	RequestOpen("ns-a", "r1", "Erasure", RequestInProgress, false)
	RequestOpen("ns-a", "r2", "Erasure", RequestInProgress, false)
	RequestOpen("ns-a", "r2", "Erasure", RequestStalled, true) // the same request changes state
	RequestOpen("ns-a", "r3", "Access", RequestOnLegalHold, true)
	defer RequestClosed("ns-a", "r1")
	expectSeries(t, openRequests, "ns-a",
		"lethe_datasubjectrequests_open{namespace=ns-a,state=in_progress,type=Erasure} 1",
		"lethe_datasubjectrequests_open{namespace=ns-a,state=on_legal_hold,type=Access} 1",
		"lethe_datasubjectrequests_open{namespace=ns-a,state=stalled,type=Erasure} 1",
		"lethe_datasubjectrequests_overdue{namespace=ns-a,type=Access} 1",
		"lethe_datasubjectrequests_overdue{namespace=ns-a,type=Erasure} 1",
	)
	RequestClosed("ns-a", "r2")
	RequestClosed("ns-a", "r3")
	RequestClosed("ns-a", "never-opened")
	expectSeries(t, openRequests, "ns-a",
		"lethe_datasubjectrequests_open{namespace=ns-a,state=in_progress,type=Erasure} 1",
	)
}

func TestCompletionOutcomesAndDryRuns(t *testing.T) {
	created := time.Now()
	RequestCompleted("ns-b", "Erasure", false, false, created, created.Add(90*time.Second))
	RequestCompleted("ns-b", "Erasure", false, true, created, created.Add(48*time.Hour))
	RequestCompleted("ns-b", "Erasure", true, false, created, created.Add(time.Second))
	expectSeries(t, requestsCompleted, "ns-b",
		"lethe_datasubjectrequests_completed_total{namespace=ns-b,outcome=completed,type=Erasure} 1",
		"lethe_datasubjectrequests_completed_total{namespace=ns-b,outcome=completed_late,type=Erasure} 1",
		"lethe_datasubjectrequests_completed_total{namespace=ns-b,outcome=dry_run,type=Erasure} 1",
	)
	// The dry run is not timed: two observations, 90s and 48h.
	expectSeries(t, requestDuration, "ns-b",
		"lethe_datasubjectrequest_duration_seconds{namespace=ns-b,type=Erasure} count=2 sum=172890",
	)
}

func TestRowsAreCountedOnlyWhenThereAreRows(t *testing.T) {
	RequestRows("ns-c", "db", "accounts", "anonymize", 1)
	RequestRows("ns-c", "db", "accounts", "anonymize", 2)
	RequestRows("ns-c", "db", "applications", "delete", 0)
	expectSeries(t, requestRows, "ns-c",
		"lethe_datasubjectrequest_rows_total{action=anonymize,collection=accounts,namespace=ns-c,store=db} 3",
	)
}

func TestStoreReadinessAndDeletion(t *testing.T) {
	StoreReadiness("ns-d", "db", true)
	StoreReadiness("ns-d", "other", true)
	StoreReadiness("ns-d", "db", false)
	expectSeries(t, storeReady, "ns-d",
		"lethe_datastore_ready{namespace=ns-d,store=db} 0",
		"lethe_datastore_ready{namespace=ns-d,store=other} 1",
	)
	StoreDeleted("ns-d", "db")
	expectSeries(t, storeReady, "ns-d",
		"lethe_datastore_ready{namespace=ns-d,store=other} 1",
	)
}

func TestDeadlineBreaches(t *testing.T) {
	RequestDeadlineBreached("ns-e", "Access")
	RequestDeadlineBreached("ns-e", "Access")
	expectSeries(t, requestDeadlineBreaches, "ns-e",
		"lethe_datasubjectrequest_deadline_breaches_total{namespace=ns-e,type=Access} 2",
	)
}
