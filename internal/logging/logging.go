// Package logging keeps personal data out of the manager's logs whatever
// verbosity an operator asks for.
//
// client-go logs the body of every API request and response at V(8)
// ("Request Body", "Response Body"), through the logger controller-runtime
// puts in each reconcile's context. Those bodies include the Secrets Lethe
// reads and writes: subject identities, rectified values and Access exports.
// Cap bounds the verbosity below that level.
package logging

import "github.com/go-logr/logr"

// MaxVerbosity is the most verbose V level the manager logs: one below
// client-go's body dumps.
const MaxVerbosity = 7

// Cap returns a logger that drops every V level above max (errors are kept).
func Cap(l logr.Logger, max int) logr.Logger {
	sink := l.GetSink()
	if sink == nil {
		return l
	}
	// The inner sink was initialized by its own logger; calls now pass
	// through one more frame, this sink's.
	if cd, ok := sink.(logr.CallDepthLogSink); ok {
		sink = cd.WithCallDepth(1)
	}
	return logr.New(&capSink{sink: sink, max: max})
}

type capSink struct {
	sink logr.LogSink
	max  int
}

var (
	_ logr.LogSink          = (*capSink)(nil)
	_ logr.CallDepthLogSink = (*capSink)(nil)
)

// Init does nothing: the inner sink is initialized already (see Cap).
func (s *capSink) Init(logr.RuntimeInfo) {}

func (s *capSink) Enabled(level int) bool { return level <= s.max && s.sink.Enabled(level) }

func (s *capSink) Info(level int, msg string, kv ...any) {
	if level > s.max {
		return
	}
	s.sink.Info(level, msg, kv...)
}

func (s *capSink) Error(err error, msg string, kv ...any) { s.sink.Error(err, msg, kv...) }

func (s *capSink) WithValues(kv ...any) logr.LogSink {
	return &capSink{sink: s.sink.WithValues(kv...), max: s.max}
}

func (s *capSink) WithName(name string) logr.LogSink {
	return &capSink{sink: s.sink.WithName(name), max: s.max}
}

func (s *capSink) WithCallDepth(depth int) logr.LogSink {
	if cd, ok := s.sink.(logr.CallDepthLogSink); ok {
		return &capSink{sink: cd.WithCallDepth(depth), max: s.max}
	}
	return s
}
