package v1alpha1

// HTTPCollection describes the requests sent to a processor for one collection.
// (Being designed: see internal/stores/http.)
type HTTPCollection struct {
}

// HTTPConnection holds a processor's credentials and signing settings.
type HTTPConnection struct {
}
