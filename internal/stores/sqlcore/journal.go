package sqlcore

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/lethe-dev/lethe/internal/stores"
)

// The journal is a small table Lethe keeps in each SQL store it erases from
// (lethe_journal by default). Each pass of a request that changes rows, and
// the first pass of every request, writes one row in the request's own
// transaction: the request's UID, its kind and the rows each collection's
// action changed. Nothing in it is personal data. So the store itself says
// what every request did to it: a receipt read back from the journal is exact
// after a crash between COMMIT and the status write, and a store restored
// from a backup tells which erasures the restore undid.

// DefaultJournalTable is the journal's table name when the DataStore names none.
const DefaultJournalTable = "lethe_journal"

// JournalTable names the journal's table, optionally in a schema
// (PostgreSQL) or database (MySQL).
type JournalTable struct {
	Schema, Table string
	// Disabled turns the journal off: receipts then add up each pass's counts
	// as the controller saw them.
	Disabled bool
}

var journalName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Validate refuses names that are not plain identifiers.
func (j JournalTable) Validate() error {
	if j.Table != "" && !journalName.MatchString(j.Table) {
		return fmt.Errorf("%w: journal table %q is not a plain identifier (letters, digits, _)", stores.ErrInvalid, j.Table)
	}
	if j.Schema != "" && !journalName.MatchString(j.Schema) {
		return fmt.Errorf("%w: journal schema %q is not a plain identifier (letters, digits, _)", stores.ErrInvalid, j.Schema)
	}
	return nil
}

func (j JournalTable) name() string {
	if j.Table == "" {
		return DefaultJournalTable
	}
	return j.Table
}

// ref is the quoted, qualified table name.
func (j JournalTable) ref(d Dialect) string {
	if j.Schema == "" {
		return d.Quote(j.name())
	}
	return d.Quote(j.Schema) + "." + d.Quote(j.name())
}

// JournalDialect is how a dialect creates the journal table.
type JournalDialect interface {
	// CreateJournal returns the statements that create the table ref (named
	// name, unqualified) and its request index if they do not exist.
	CreateJournal(ref, name string) []string
}

// journal is a store's journal and what is known of it.
type journal struct {
	table JournalTable
	mu    sync.Mutex
	known bool // state was established since the store opened (or last failed)
	state stores.JournalStatus
}

func (j *journal) get() (stores.JournalStatus, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state, j.known
}

func (j *journal) set(st stores.JournalStatus) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.state, j.known = st, true
}

// forget makes the next request establish the state again (a journal
// statement failed: the table may have been dropped).
func (j *journal) forget() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.known = false
}

// EnsureJournal creates the journal table if it is missing, in a transaction
// of its own (MySQL commits DDL implicitly), and records whether requests can
// use it. A store the manager may not write tables in reports why and works
// without it.
func (c *Core[L, T]) EnsureJournal(ctx context.Context) stores.JournalStatus {
	if c.journal.table.Disabled {
		st := stores.JournalStatus{Disabled: true, Reason: "disabled by the DataStore (spec.journal.disabled)"}
		c.journal.set(st)
		return st
	}
	jd, ok := c.dialect.(JournalDialect)
	if !ok {
		return stores.JournalStatus{Reason: "this engine keeps no journal"}
	}
	err := c.engine.InTx(ctx, ReadWrite, func(tx T) error {
		t := c.engine.Tx(tx)
		for _, q := range jd.CreateJournal(c.journal.table.ref(c.dialect), c.journal.table.name()) {
			if _, err := t.Exec(ctx, Statement{SQL: q}); err != nil {
				return err
			}
		}
		return nil
	})
	st := stores.JournalStatus{Available: true}
	if err != nil {
		st = stores.JournalStatus{Reason: c.engine.DBError(fmt.Sprintf("creating the journal table %s", c.journal.table.name()), err).Error()}
	}
	c.journal.set(st)
	return st
}

// journalFor returns the journal a request's pass uses, establishing its
// state first if no check did yet; ok is false without one.
func (c *Core[L, T]) journalFor(ctx context.Context, req stores.Request) bool {
	if req.RequestID == "" || c.journal.table.Disabled {
		return false
	}
	st, known := c.journal.get()
	if !known {
		st = c.EnsureJournal(ctx)
	}
	return st.Available
}

// journalEntry is one collection's changes in one pass, as the journal keeps it.
type journalEntry struct {
	Collection string        `json:"collection"`
	Action     stores.Action `json:"action"`
	Rows       int64         `json:"rows"`
}

// readJournal returns the changes earlier passes of the request recorded, and
// whether there was any pass.
func (s *Session) readJournal(ctx context.Context, j JournalTable, requestID string) ([]stores.CollectionResult, bool, error) {
	passes, err := s.journalPasses(ctx, j, requestID)
	if err != nil {
		return nil, false, s.dbError("reading the journal", err)
	}
	var out []stores.CollectionResult
	for _, pass := range passes {
		for _, e := range pass {
			out = append(out, stores.CollectionResult{Collection: e.Collection, Action: e.Action, Rows: e.Rows})
		}
	}
	return out, len(passes) > 0, nil
}

// journalPasses reads the request's passes, oldest first.
func (s *Session) journalPasses(ctx context.Context, j JournalTable, requestID string) ([][]journalEntry, error) {
	p := s.Params()
	q := fmt.Sprintf("SELECT results FROM %s WHERE request_uid = %s ORDER BY id", j.ref(s.Dialect), p.Add(requestID))
	var text string
	var passes [][]journalEntry
	err := s.Tx.Query(ctx, Statement{q, p.Values()}, []any{&text}, func() error {
		var pass []journalEntry
		if err := json.Unmarshal([]byte(text), &pass); err != nil {
			return fmt.Errorf("%w: journal table %s holds a row Lethe did not write: %v", stores.ErrInvalid, j.name(), err)
		}
		passes = append(passes, pass)
		return nil
	})
	return passes, err
}

// writeJournal records a pass's changes.
func (s *Session) writeJournal(ctx context.Context, j JournalTable, req stores.Request, pass []journalEntry) error {
	body, err := json.Marshal(pass)
	if err != nil {
		return err
	}
	p := s.Params()
	q := fmt.Sprintf("INSERT INTO %s (request_uid, kind, results) VALUES (%s, %s, %s)", j.ref(s.Dialect),
		p.Add(req.RequestID), p.Add(string(req.Kind)), p.Add(string(body)))
	if _, err := s.Tx.Exec(ctx, Statement{q, p.Values()}); err != nil {
		return s.dbError("writing the journal", err)
	}
	return nil
}

// changes lists the rows a pass's results changed (not retained or reported ones).
func changes(res stores.Result) []journalEntry {
	out := []journalEntry{}
	for _, r := range res.Collections {
		if r.Action.ChangesRows() && r.Rows > 0 {
			out = append(out, journalEntry{Collection: r.Collection, Action: r.Action, Rows: r.Rows})
		}
	}
	return out
}

// journaled runs a pass of req (apply) in s and returns its result with the
// request's totals, reading and writing the journal in the same transaction:
// a pass that changes nothing after the first is not written again.
func (s *Session) journaled(ctx context.Context, j JournalTable, req stores.Request, apply func() (stores.Result, error)) (stores.Result, error) {
	earlier, found, err := s.readJournal(ctx, j, req.RequestID)
	if err != nil {
		return stores.Result{}, err
	}
	res, err := apply()
	if err != nil {
		return stores.Result{}, err
	}
	pass := changes(res)
	if !found || len(pass) > 0 {
		if err := s.writeJournal(ctx, j, req, pass); err != nil {
			return stores.Result{}, err
		}
	}
	res.Totals = stores.AddUp(earlier, res.Collections)
	return res, nil
}

// JournalRows reads the passes the journal records for a request, for tests
// and tools: per pass, "collection action rows, ...".
func (c *Core[L, T]) JournalRows(ctx context.Context, requestID string) ([]string, error) {
	var out []string
	err := c.engine.InTx(ctx, ReadOnly, func(tx T) error {
		s := &Session{Map: c.m, Dialect: c.dialect, Tx: c.engine.Tx(tx), Errors: c.engine}
		passes, err := s.journalPasses(ctx, c.journal.table, requestID)
		for _, pass := range passes {
			line := make([]string, len(pass))
			for i, e := range pass {
				line[i] = fmt.Sprintf("%s %s %d", e.Collection, e.Action, e.Rows)
			}
			out = append(out, strings.Join(line, ", "))
		}
		return err
	})
	return out, err
}
