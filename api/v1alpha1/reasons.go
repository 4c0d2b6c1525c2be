package v1alpha1

// Condition types beyond the kstatus trio.
const (
	// ConditionDeadlineExceeded is True when a request was not complete by its deadline.
	ConditionDeadlineExceeded = "DeadlineExceeded"
	// ConditionOnLegalHold is True while part of a request waits for a legal hold to end.
	ConditionOnLegalHold = "OnLegalHold"
	// ConditionJournal is True on a SQL DataStore whose journal requests
	// write to, False (with a reason) when they cannot.
	ConditionJournal = "Journal"
	// ConditionErasuresReplayed is set on a SQL DataStore once a restore
	// from backup is detected (a completed erasure's journal row missing):
	// True when every such erasure was re-applied, False while one failed
	// (ReplayFailed, retried) or cannot be (RestoreTooOld).
	ConditionErasuresReplayed = "ErasuresReplayed"
)

// Reasons, shared by conditions and Events. Messages say the rest, for humans,
// and never contain personal data.
const (
	// ReasonProgressing: the controller is working on the object.
	ReasonProgressing = "Progressing"
	// ReasonSucceeded: the object is healthy (stores, policies, holds).
	ReasonSucceeded = "Succeeded"
	// ReasonCompleted: every store in scope has done its part of the request.
	ReasonCompleted = "Completed"
	// ReasonDryRunCompleted: the plan is in status; nothing was changed.
	ReasonDryRunCompleted = "DryRunCompleted"
	// ReasonInvalidDataMap: the DataStore's data map is inconsistent (cycle, unreachable collection, ...).
	ReasonInvalidDataMap = "InvalidDataMap"
	// ReasonSchemaDrift: the live schema no longer matches the data map.
	ReasonSchemaDrift = "SchemaDrift"
	// ReasonSecretNotFound: a referenced Secret or key is missing.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonConnectionRefused: the connection Secret sets something a DataStore
	// may not (a parameter outside the engine's allowlist, a socket path,
	// plaintext where the operator requires TLS); the message names the parameter.
	ReasonConnectionRefused = "ConnectionRefused"
	// ReasonEgressRefused: the store's address is one the manager's egress
	// policy refuses (loopback, link-local, cloud metadata, the API server,
	// or an operator's --egress-deny); the message names the class of address.
	ReasonEgressRefused = "EgressRefused"
	// ReasonSubjectNotFound: the request is complete, but no store in scope
	// held any data of the subject (Ready=True, with a Warning Event): check
	// the identities if the person should be known.
	ReasonSubjectNotFound = "SubjectNotFound"
	// ReasonStoreRemoved: a DataStore in the request's scope was deleted (or
	// left its scope) before its part was done; recreate it or file a new request.
	ReasonStoreRemoved = "StoreRemoved"
	// ReasonJournalReady: the journal table exists and requests write to it.
	ReasonJournalReady = "JournalReady"
	// ReasonJournalUnavailable: the journal table cannot be created or written
	// (a read-only user); requests work without it.
	ReasonJournalUnavailable = "JournalUnavailable"
	// ReasonRestoreDetected: completed erasures were missing from the
	// store's journal (a restore from backup undid them) and were re-applied.
	ReasonRestoreDetected = "RestoreDetected"
	// ReasonReplayFailed: re-applying an erasure undone by a restore failed
	// (store down, schema changed); the original receipt is intact and the
	// replay is retried.
	ReasonReplayFailed = "ReplayFailed"
	// ReasonRestoreTooOld: erasures are missing from the store's journal but
	// their identities are no longer kept (older than spec.backupRetention,
	// or completed while it was unset): Lethe cannot re-apply them.
	ReasonRestoreTooOld = "RestoreTooOld"
	// ReasonStoreIdentityChanged: the store's server identity (PostgreSQL
	// system identifier or timeline, MySQL server_uuid) changed: a failover
	// or a restore onto another instance.
	ReasonStoreIdentityChanged = "StoreIdentityChanged"
	// ReasonJournalDisabled: spec.journal.disabled.
	ReasonJournalDisabled = "JournalDisabled"
	// ReasonErasureNotVerified: after a store's part committed, the subject
	// was resolved again and rows that should have been erased were found
	// (written meanwhile by an application); the part is done again.
	ReasonErasureNotVerified = "ErasureNotVerified"
	// ReasonSubjectChanged: the subject's identities differ from those the
	// request started with (its Secret was edited); a request never changes
	// whose data it acts on: file a new one.
	ReasonSubjectChanged = "SubjectChanged"
	// ReasonTooFrequent: a schedule runs more often than the manager allows.
	ReasonTooFrequent = "TooFrequent"
	// ReasonStoreUnavailable: the store cannot be reached; retried with backoff.
	ReasonStoreUnavailable = "StoreUnavailable"
	// ReasonStoreNotFound: a DataStore named in scope does not exist (yet).
	ReasonStoreNotFound = "StoreNotFound"
	// ReasonStoreNotReady: a store in scope is not Ready (schema drift, invalid map).
	ReasonStoreNotReady = "StoreNotReady"
	// ReasonNoStoresInScope: the scope selects no DataStore.
	ReasonNoStoresInScope = "NoStoresInScope"
	// ReasonInvalidSubject: the subject's identities are missing, empty or unknown to every store.
	ReasonInvalidSubject = "InvalidSubject"
	// ReasonStoreFailed: a store refused the request in a way retrying cannot fix.
	ReasonStoreFailed = "StoreFailed"
	// ReasonSubjectTooLarge: the subject's part in a store met the store's
	// statement timeout on several attempts in a row: it is too large for one
	// transaction within that timeout, and retrying would only load the
	// database again.
	ReasonSubjectTooLarge = "SubjectTooLarge"
	// ReasonExportTooLarge: the Access export would pass the manager's
	// --max-export-bytes budget.
	ReasonExportTooLarge = "ExportTooLarge"
	// ReasonDeadlineExceeded: the deadline passed before the request completed.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonCompletedLate: the request completed, but after its deadline.
	ReasonCompletedLate = "CompletedLate"
	// ReasonWithinDeadline: the request completed (or is running) within its deadline.
	ReasonWithinDeadline = "WithinDeadline"
	// ReasonOnLegalHold: held data waits for the hold to end; the rest is done.
	ReasonOnLegalHold = "OnLegalHold"
	// ReasonInvalidSchedule: the cron schedule cannot be parsed.
	ReasonInvalidSchedule = "InvalidSchedule"
	// ReasonSuspended: the policy is suspended: no sweep is scheduled (Ready=True,
	// since the object is in the state its spec asks for).
	ReasonSuspended = "Suspended"
	// ReasonInvalidRule: a retention rule does not fit its DataStore (unknown
	// collection, a field that is not a date or timestamp, no anonymizable field).
	ReasonInvalidRule = "InvalidRule"
	// ReasonSweepUnsupported: the DataStore's engine cannot run retention sweeps.
	ReasonSweepUnsupported = "SweepUnsupported"
	// ReasonProtectionWeakened: a change that decreases protection was accepted
	// with a justification (an Event, never a condition).
	ReasonProtectionWeakened = "ProtectionWeakened"
	// ReasonExpired: a legal hold's expiresAt has passed; it holds nothing any more.
	ReasonExpired = "Expired"
	// ReasonInvalidExportRecipient: an Access request's spec.export.recipients
	// holds a key age cannot encrypt to; nothing was read from the stores.
	ReasonInvalidExportRecipient = "InvalidExportRecipient"
	// ReasonIdentitiesDiscarded: a completed request's input Secrets (the
	// subject's identities, rectified values) were deleted (an Event).
	ReasonIdentitiesDiscarded = "IdentitiesDiscarded"
	// ReasonSecretKept: an input Secret was left alone because Lethe may not
	// delete it (no opt-in label, no owner reference to the request) or a
	// DataStore also uses it (a Warning Event).
	ReasonSecretKept = "SecretKept"
	// ReasonExportExpired: an Access export's TTL passed and its Secret was deleted (an Event).
	ReasonExportExpired = "ExportExpired"
)
