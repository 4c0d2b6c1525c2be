package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// storeUnmapped counts, per DataStore, the columns its last check found
// looking personal outside the data map (the UnmappedPersonalData
// condition names them). A count only: column names stay out of labels.
var storeUnmapped = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "lethe_datastore_unmapped_personal_columns",
	Help: "Columns that look personal but are not in the DataStore's data map (mapped tables and the unmapped tables linked to them by a foreign key), ignored ones excluded, at the last check; postgres and mysql stores only.",
}, []string{"namespace", "store"})

func init() {
	crmetrics.Registry.MustRegister(storeUnmapped)
}

// StoreUnmapped records how many personal-looking columns a DataStore's data
// map leaves out.
func StoreUnmapped(namespace, store string, columns int) {
	storeUnmapped.WithLabelValues(namespace, store).Set(float64(columns))
}

// StoreUnmappedUnknown removes the series of a store whose engine does not
// look (or that was deleted: StoreDeleted).
func StoreUnmappedUnknown(namespace, store string) {
	storeUnmapped.DeleteLabelValues(namespace, store)
}
