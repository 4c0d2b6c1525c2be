package stores

import "context"

// What a store tells about its own history, for replaying erasures after a
// restore from backup (docs/backups.md). Only SQL stores keep a journal;
// Redis and processors have none and are not replayed.

// StoreIdentity says which database server instance a store is, so a
// failover or a physical restore (a new instance, a new timeline) is noticed.
// Nothing in it is personal data.
type StoreIdentity struct {
	// System is PostgreSQL's system_identifier (pg_control_system()), MySQL's
	// @@server_uuid, or, on MariaDB (which has no server_uuid),
	// "mariadb:<server_id>@<hostname>".
	System string
	// Timeline is PostgreSQL's timeline (pg_control_checkpoint()); empty on
	// the other engines. It grows on each point-in-time recovery or promotion.
	Timeline string
}

// JournalReader is a store whose journal says which requests it contains.
// The journal is restored together with the data, so a completed erasure
// whose journal row is missing was undone by a restore.
type JournalReader interface {
	// JournalRequestIDs returns the request identifiers (RequestID, the
	// request's UID) the journal records passes of kind for: all of them when
	// among is nil, otherwise only those of among. A disabled or unavailable
	// journal is an error (ErrInvalid or ErrUnavailable).
	JournalRequestIDs(ctx context.Context, kind Kind, among []string) (map[string]bool, error)
	// StoreIdentity reads the server's identity.
	StoreIdentity(ctx context.Context) (StoreIdentity, error)
}
