package stores

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ExportWriter receives a store's export row by row, as the engine reads it.
// Rows of one collection come together; engines send collections in name
// order, so the document reads as json.Marshal of an Export would.
type ExportWriter interface {
	// Row writes one row of collection. An error (the budget is spent, the
	// sink failed) stops the export: the engine returns it unchanged.
	Row(collection string, row map[string]any) error
}

// ExportStreamer is implemented by engines that export through an
// ExportWriter, so the manager never holds a whole export: SQL engines read
// with a cursor and write each row as it comes; others write what they fetched.
type ExportStreamer interface {
	// StreamExport writes the subject's data in scope (Access) to w and
	// returns the per-collection counts.
	StreamExport(ctx context.Context, req Request, w ExportWriter) (Result, error)
}

// ErrExportTooLarge wraps the refusal of an export over its byte budget.
var ErrExportTooLarge = errors.New("export too large")

// ExportTooLargeError says how far an export got before its budget; it names
// sizes and a collection, never a value.
type ExportTooLargeError struct {
	// Reached is the bytes encoded before the refused row.
	Reached int64
	// Limit is the budget.
	Limit int64
	// Collection is the collection of the row that would have passed it.
	Collection string
}

func (e *ExportTooLargeError) Error() string {
	return fmt.Sprintf("%v: %d bytes encoded, and the next row of collection %q would pass the limit of %d bytes",
		ErrExportTooLarge, e.Reached, e.Collection, e.Limit)
}

func (e *ExportTooLargeError) Unwrap() error { return ErrExportTooLarge }

// CollectExport runs stream into an in-memory Export, for callers that want
// the whole export (tests, small exports). It has no budget.
func CollectExport(stream func(ExportWriter) (Result, error)) (Export, Result, error) {
	c := collector{}
	res, err := stream(c)
	if err != nil {
		return nil, res, err
	}
	return Export(c), res, nil
}

type collector Export

func (c collector) Row(collection string, row map[string]any) error {
	c[collection] = append(c[collection], row)
	return nil
}

// Document encodes, as rows arrive, the export document of a request:
// {"<store>": {"<collection>": [<row>, ...], ...}, ...}, the JSON of a
// map[string]Export. Nothing but the encoding of one row is held: bytes go to
// the sink at once, and a row that would take the document past the limit
// is refused before it is written.
type Document struct {
	sink    io.Writer
	limit   int64
	n       int64
	stores  int // stores written so far
	err     error
	current *storeSection
}

// NewDocument starts a document written to sink, of at most limit bytes
// (0: no limit).
func NewDocument(sink io.Writer, limit int64) *Document {
	d := &Document{sink: sink, limit: limit}
	d.err = d.write([]byte("{"), "")
	return d
}

// Size is the bytes written so far.
func (d *Document) Size() int64 { return d.n }

// Store starts the section of store name: the rows written through the
// returned writer until EndStore. Store names must be unique, and come in
// name order to match json.Marshal.
func (d *Document) Store(name string) *StoreSection {
	s := &storeSection{d: d, name: name, seen: map[string]bool{}}
	d.current = s
	return &StoreSection{s}
}

// StoreSection is one store's part of a Document.
type StoreSection struct{ s *storeSection }

// Row implements ExportWriter.
func (w *StoreSection) Row(collection string, row map[string]any) error {
	return w.s.row(collection, row)
}

// Started reports whether any byte of this store was written: a store that
// fails after that has left part of its data in the document.
func (w *StoreSection) Started() bool { return w.s.opened }

// End closes the store's section; a store without rows is written as {}.
func (w *StoreSection) End() error {
	s := w.s
	if s.d.err != nil {
		return s.d.err
	}
	if !s.opened {
		if err := s.open(); err != nil {
			return err
		}
	}
	closing := "}"
	if s.collection != "" {
		closing = "]}"
	}
	s.d.current = nil
	return s.d.write([]byte(closing), s.collection)
}

// Close ends the document.
func (d *Document) Close() error {
	if d.err != nil {
		return d.err
	}
	return d.write([]byte("}"), "")
}

type storeSection struct {
	d          *Document
	name       string
	opened     bool
	collection string // the collection whose array is open
	seen       map[string]bool
}

func (s *storeSection) open() error {
	key, _ := json.Marshal(s.name)
	b := make([]byte, 0, len(key)+3)
	if s.d.stores > 0 {
		b = append(b, ',')
	}
	b = append(append(b, key...), ':', '{')
	if err := s.d.write(b, ""); err != nil {
		return err
	}
	s.opened = true
	s.d.stores++
	return nil
}

func (s *storeSection) row(collection string, row map[string]any) error {
	if s.d.err != nil {
		return s.d.err
	}
	if s.d.current != s {
		return fmt.Errorf("export of store %q: a row came after its section ended", s.name)
	}
	enc, err := json.Marshal(row)
	if err != nil {
		return fmt.Errorf("encoding a row of collection %q: %w", collection, err)
	}
	var head []byte
	switch {
	case collection == s.collection:
		head = []byte(",")
	case s.seen[collection]:
		return fmt.Errorf("export of collection %q: its rows did not come together", collection)
	default:
		key, _ := json.Marshal(collection)
		if s.collection != "" {
			head = append(head, ']', ',')
		}
		head = append(append(head, key...), ':', '[')
	}
	// The whole row is checked before any of it is written, so a refused
	// document never holds half a row (the caller discards it anyway).
	if s.d.limit > 0 && s.d.n+int64(len(head)+len(enc)+s.openLen()) > s.d.limit {
		s.d.err = &ExportTooLargeError{Reached: s.d.n, Limit: s.d.limit, Collection: collection}
		return s.d.err
	}
	if !s.opened {
		if err := s.open(); err != nil {
			return err
		}
	}
	s.seen[collection] = true
	s.collection = collection
	if err := s.d.write(head, collection); err != nil {
		return err
	}
	return s.d.write(enc, collection)
}

// openLen is what opening the store's section will add.
func (s *storeSection) openLen() int {
	if s.opened {
		return 0
	}
	key, _ := json.Marshal(s.name)
	if s.d.stores > 0 {
		return len(key) + 3
	}
	return len(key) + 2
}

// write sends b to the sink within the limit.
func (d *Document) write(b []byte, collection string) error {
	if d.err != nil {
		return d.err
	}
	if d.limit > 0 && d.n+int64(len(b)) > d.limit {
		d.err = &ExportTooLargeError{Reached: d.n, Limit: d.limit, Collection: collection}
		return d.err
	}
	if _, err := d.sink.Write(b); err != nil {
		d.err = fmt.Errorf("writing the export: %w", err)
		return d.err
	}
	d.n += int64(len(b))
	return nil
}
