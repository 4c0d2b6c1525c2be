package controllers

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// A replay whose record cannot be written is kept and written by the next
// check's recorder, once: its journal row is back, so the replay itself is
// not repeated, and the record must not be lost. (The envtest tests in
// backup_replay_test.go cover replays end to end; this one needs a status
// write that fails, which the fake client's interceptor gives.)
func TestAReplayRecordThatFailsIsWrittenAtTheNextCheck(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := privacyv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	dsr := &privacyv1.DataSubjectRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "erase", UID: "uid-1"},
		Spec: privacyv1.DataSubjectRequestSpec{Type: privacyv1.RequestErasure}}
	var failing atomic.Bool
	failing.Store(true)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(dsr).WithStatusSubresource(&privacyv1.DataSubjectRequest{}).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				if failing.Load() {
					return errors.New("the API server is unavailable")
				}
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		}).Build()
	r := &DataStoreReconciler{Client: c, APIReader: c}
	ds := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app-db", UID: "store-1"}}
	ctx := context.Background()
	listed := &privacyv1.DataSubjectRequest{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(dsr), listed); err != nil {
		t.Fatal(err)
	}
	rec := privacyv1.Replay{Store: ds.Name, Reason: privacyv1.ReasonRestoreDetected, Rows: 6}

	first := newReplayRecorder(ctx, r, ds)
	first.record(ctx, listed, rec)
	if failed := first.wait(); len(failed) != 1 || failed[0] != "erase" {
		t.Fatalf("failed records = %v, want the request erase", failed)
	}
	replays := func() []privacyv1.Replay {
		t.Helper()
		got := &privacyv1.DataSubjectRequest{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(dsr), got); err != nil {
			t.Fatal(err)
		}
		return got.Status.Replays
	}
	if n := len(replays()); n != 0 {
		t.Fatalf("%d replays recorded while the status write fails", n)
	}

	failing.Store(false)
	if failed := newReplayRecorder(ctx, r, ds).wait(); len(failed) != 0 {
		t.Fatalf("the next check failed to write the kept record: %v", failed)
	}
	if got := replays(); len(got) != 1 || got[0].Rows != 6 || got[0].Store != ds.Name {
		t.Fatalf("replays after the next check = %+v, want the kept record", got)
	}
	if failed := newReplayRecorder(ctx, r, ds).wait(); len(failed) != 0 || len(replays()) != 1 {
		t.Fatalf("a third check wrote the record again: %d replays", len(replays()))
	}
	// Another DataStore's records are its own.
	other := &privacyv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other", UID: "store-2"}}
	failing.Store(true)
	rr := newReplayRecorder(ctx, r, ds)
	rr.record(ctx, listed, rec)
	rr.wait()
	failing.Store(false)
	if newReplayRecorder(ctx, r, other).wait(); len(replays()) != 1 {
		t.Fatal("another DataStore's check wrote this store's kept record")
	}
}
