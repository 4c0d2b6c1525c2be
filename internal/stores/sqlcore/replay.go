package sqlcore

import (
	"context"
	"fmt"
	"strings"

	"github.com/lethe-dev/lethe/internal/stores"
)

// What the journal tells about a restored store (see journal.go): which
// requests' passes it holds, and which server instance it is.

// IdentityDialect is how a dialect reads the server's identity
// (stores.StoreIdentity) in a read-only transaction.
type IdentityDialect interface {
	StoreIdentity(ctx context.Context, tx Tx) (stores.StoreIdentity, error)
}

// journalIDBatch bounds the request identifiers one statement binds.
const journalIDBatch = 500

var _ stores.JournalReader = (*Core[struct{}, struct{}])(nil)

// JournalRequestIDs returns the request identifiers (request UIDs) the
// journal holds passes of kind for: every one when among is nil, else those
// of among, looked up in batches by the journal's request index.
func (c *Core[L, T]) JournalRequestIDs(ctx context.Context, kind stores.Kind, among []string) (map[string]bool, error) {
	if c.journal.table.Disabled {
		return nil, fmt.Errorf("%w: the journal is disabled (spec.journal.disabled)", stores.ErrInvalid)
	}
	if _, ok := c.dialect.(JournalDialect); !ok {
		return nil, fmt.Errorf("%w: this engine keeps no journal", stores.ErrInvalid)
	}
	if st, known := c.journal.get(); known && !st.Available {
		return nil, fmt.Errorf("%w: the journal is not available: %s", stores.ErrUnavailable, st.Reason)
	}
	found := map[string]bool{}
	err := c.engine.InTx(ctx, ReadOnly, func(tx T) error {
		s := &Session{Map: c.m, Dialect: c.dialect, Tx: c.engine.Tx(tx), Errors: c.engine}
		if among == nil {
			return s.journalIDs(ctx, c.journal.table, kind, nil, found)
		}
		for start := 0; start < len(among); start += journalIDBatch {
			if err := s.journalIDs(ctx, c.journal.table, kind, among[start:min(start+journalIDBatch, len(among))], found); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// journalIDs adds to found the request identifiers of kind in the journal,
// among ids (all when ids is nil).
func (s *Session) journalIDs(ctx context.Context, j JournalTable, kind stores.Kind, ids []string, found map[string]bool) error {
	p := s.Params()
	q := fmt.Sprintf("SELECT DISTINCT request_uid FROM %s WHERE kind = %s", j.ref(s.Dialect), p.Add(string(kind)))
	if ids != nil {
		if len(ids) == 0 {
			return nil
		}
		marks := make([]string, len(ids))
		for i, id := range ids {
			marks[i] = p.Add(id)
		}
		q += " AND request_uid IN (" + strings.Join(marks, ", ") + ")"
	}
	var id string
	err := s.Tx.Query(ctx, Statement{q, p.Values()}, []any{&id}, func() error {
		found[id] = true
		return nil
	})
	return s.dbError("reading the journal's requests", err)
}

// StoreIdentity reads the server's identity, where the dialect can.
func (c *Core[L, T]) StoreIdentity(ctx context.Context) (stores.StoreIdentity, error) {
	d, ok := c.dialect.(IdentityDialect)
	if !ok {
		return stores.StoreIdentity{}, fmt.Errorf("%w: this engine does not report its identity", stores.ErrInvalid)
	}
	var id stores.StoreIdentity
	err := c.engine.InTx(ctx, ReadOnly, func(tx T) error {
		var err error
		id, err = d.StoreIdentity(ctx, c.engine.Tx(tx))
		if err != nil {
			return c.engine.DBError("reading the server's identity", err)
		}
		return nil
	})
	return id, err
}
