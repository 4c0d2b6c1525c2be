package metrics

import "testing"

func TestUnmappedColumnsPerStoreAndForgotten(t *testing.T) {
	StoreUnmapped("ns-u", "db", 3)
	StoreUnmapped("ns-u", "other", 0)
	StoreUnmapped("ns-u", "gone", 1)
	expectSeries(t, storeUnmapped, "ns-u",
		"lethe_datastore_unmapped_personal_columns{namespace=ns-u,store=db} 3",
		"lethe_datastore_unmapped_personal_columns{namespace=ns-u,store=gone} 1",
		"lethe_datastore_unmapped_personal_columns{namespace=ns-u,store=other} 0",
	)
	StoreUnmappedUnknown("ns-u", "other")
	StoreDeleted("ns-u", "gone")
	expectSeries(t, storeUnmapped, "ns-u",
		"lethe_datastore_unmapped_personal_columns{namespace=ns-u,store=db} 3",
	)
}
