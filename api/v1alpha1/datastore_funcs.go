package v1alpha1

import "time"

// DefaultCheckInterval is how often a DataStore's live schema is rechecked
// when spec.checkInterval is not set.
const DefaultCheckInterval = 5 * time.Minute

// MinCheckInterval is the shortest check interval: admission refuses less,
// and CheckEvery never returns less (an object stored before that rule).
const MinCheckInterval = 30 * time.Second

// CheckEvery is how often the live schema is checked against the data map; it
// is also how long an engine may trust the schema it last checked.
func (s DataStoreSpec) CheckEvery() time.Duration {
	if s.CheckInterval != nil && s.CheckInterval.Duration > 0 {
		return max(s.CheckInterval.Duration, MinCheckInterval)
	}
	return DefaultCheckInterval
}
