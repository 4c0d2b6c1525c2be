package storetest

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/stores"
)

// scenario is one behaviour every engine with its features must have.
type scenario struct {
	name  string
	needs []Feature
	// applies, when set, says whether the scenario concerns the suite at all
	// (uuid spellings concern uuid keys only); scenarios that do not apply are
	// neither run nor skipped by design.
	applies func(Suite) bool
	run     func(t T, e *env)
	// alone runs the scenario while no other runs in the test binary: it
	// measures the process's allocations, which others would add to.
	alone bool
}

// scenarios is the suite, in the order Run starts them.
var scenarios = []scenario{
	// Exact matching.
	{name: "look-alike-subjects-match-exactly", run: lookAlikeSubjectsMatchExactly},
	{name: "hostile-identities-match-only-themselves", run: hostileIdentitiesMatchOnlyThemselves},
	{name: "user-id-look-alikes-match-nothing", run: userIDLookAlikesMatchNothing},
	{name: "uuid-identities-match-in-any-case", applies: func(s Suite) bool { return s.UUIDKeys }, run: uuidIdentitiesMatchInAnyCase},

	// Erasure.
	{name: "erasure-deletes-exactly-the-subjects-rows", run: erasureDeletesExactlyTheSubjectsRows},
	{name: "set-null-when-the-parent-is-deleted", needs: []Feature{References}, run: setNullWhenTheParentIsDeleted},
	{name: "set-null-when-the-parent-is-anonymized", needs: []Feature{References, Anonymize}, run: setNullWhenTheParentIsAnonymized},
	{name: "anonymization-masks-as-mapped", needs: []Feature{Anonymize}, run: anonymizationMasksAsMapped},
	{name: "erasure-twice-changes-nothing", run: erasureTwiceChangesNothing},
	{name: "plan-changes-nothing-and-matches-apply", needs: []Feature{RowCounts}, run: planChangesNothingAndMatchesApply},
	{name: "failure-leaves-the-store-unchanged", needs: []Feature{Atomic}, run: failureLeavesTheStoreUnchanged},
	{name: "locked-rows-time-out-and-change-nothing", needs: []Feature{Locks}, run: lockedRowsTimeOutAndChangeNothing},
	{name: "exemptions-keep-rows-and-their-children", needs: []Feature{Exemptions}, run: exemptionsKeepRowsAndTheirChildren},
	{name: "partial-scope-anonymizes-only-fields-in-scope", needs: []Feature{Anonymize}, run: partialScopeAnonymizesOnlyFieldsInScope},
	{name: "scope-without-masking-is-refused", needs: []Feature{Anonymize}, run: scopeWithoutMaskingIsRefused},

	// Holds.
	{name: "hold-on-a-collection-keeps-its-rows", run: holdOnACollectionKeepsItsRows},
	{name: "hold-on-the-store-keeps-everything", run: holdOnTheStoreKeepsEverything},
	{name: "hold-by-another-identity-holds-the-person", run: holdByAnotherIdentityHoldsThePerson},
	{name: "hold-on-someone-else-holds-nothing", run: holdOnSomeoneElseHoldsNothing},
	{name: "hold-by-rows-compares-people-not-identities", needs: []Feature{HoldsByRows, References}, run: holdByRowsComparesPeople},
	{name: "held-rows-found-only-through-a-masked-identity", needs: []Feature{References, Anonymize}, run: heldRowsFoundOnlyThroughAMaskedIdentity},
	{name: "held-rows-keep-their-deleted-parents", needs: []Feature{References}, run: heldRowsKeepTheirDeletedParents},
	{name: "held-rows-found-through-a-masked-reference", needs: []Feature{References, Anonymize}, run: heldRowsFoundThroughAMaskedReference},

	// Receipts that are exact and checked.
	{name: "journal-totals-survive-a-lost-receipt", needs: []Feature{Journal, References}, run: journalTotalsSurviveALostReceipt},
	{name: "verification-finds-what-is-left", needs: []Feature{Verification}, run: verificationFindsWhatIsLeft},
	{name: "retained-rows-report-their-first-and-last-dates", needs: []Feature{Exemptions}, run: retainedRowsReportTheirFirstAndLastDates},
	{name: "large-subject-is-erased-by-condition", needs: []Feature{References, LargeSubjects}, run: largeSubjectIsErasedByCondition, alone: true},
	{name: "batched-erasure-deletes-in-bounded-transactions", needs: []Feature{References, LargeSubjects, Journal}, run: batchedErasureDeletesInBoundedTransactions},

	// Access and rectification.
	{name: "export-holds-only-the-subjects-rows", run: exportHoldsOnlyTheSubjectsRows},
	{name: "export-holds-exactly-the-mapped-fields", needs: []Feature{MappedExport}, run: exportHoldsExactlyTheMappedFields},
	{name: "export-honours-scope", needs: []Feature{MappedExport}, run: exportHonoursScope},
	{name: "rectification-updates-only-the-subject", run: rectificationUpdatesOnlyTheSubject},
	{name: "rectification-refuses-values-that-do-not-fit", needs: []Feature{Schema}, run: rectificationRefusesValuesThatDoNotFit},

	// Requests refused before any query.
	{name: "refuses-an-empty-identity", run: refusesAnEmptyIdentity},
	{name: "refuses-a-request-without-identity", run: refusesARequestWithoutIdentity},
	{name: "refuses-identities-the-store-does-not-map", run: refusesIdentitiesTheStoreDoesNotMap},
	{name: "refuses-rectification-without-values", run: refusesRectificationWithoutValues},
	{name: "refuses-a-hold-on-an-unknown-collection", run: refusesAHoldOnAnUnknownCollection},
	{name: "refuses-to-apply-an-access-request", run: refusesToApplyAnAccessRequest},

	// Schema.
	{name: "check-accepts-the-fixture", run: checkAcceptsTheFixture},
	{name: "check-wants-a-masking-key", run: checkWantsAMaskingKey},
	{name: "check-reports-drift-precisely", needs: []Feature{Schema}, run: checkReportsDriftPrecisely},
	{name: "check-warns-about-foreign-keys-that-break-erasure", needs: []Feature{Schema, References}, run: checkWarnsAboutForeignKeys},
	{name: "drift-after-the-schema-was-cached-is-reported", needs: []Feature{Schema}, run: driftAfterTheSchemaWasCached},
	{name: "empty-database-is-reported-as-drift", needs: []Feature{Schema}, run: emptyDatabaseIsReportedAsDrift},

	// Sweeps.
	{name: "subject-keys-follow-references-in-key-order", needs: []Feature{Sweeps, References}, run: subjectKeysFollowReferencesInKeyOrder},
	{name: "sweep-deletes-exactly-the-expired-rows", needs: []Feature{Sweeps}, run: sweepDeletesExactlyTheExpiredRows},
	{name: "sweep-honours-conditions-and-held-keys", needs: []Feature{Sweeps}, run: sweepHonoursConditionsAndHeldKeys},
	{name: "sweep-anonymizes-each-row-once", needs: []Feature{Sweeps, Anonymize}, run: sweepAnonymizesEachRowOnce},
	{name: "sweep-cursor-is-opaque-and-resumes-in-another-store", needs: []Feature{Sweeps}, run: sweepCursorIsOpaqueAndResumes},
	{name: "sweep-refuses-rules-that-do-not-fit", needs: []Feature{Sweeps}, run: sweepRefusesRulesThatDoNotFit},
	{name: "sweep-skips-rows-locked-by-others", needs: []Feature{Sweeps, Locks}, run: sweepSkipsRowsLockedByOthers},
	{name: "past-period-counts-held-rows-and-rows-without-a-date", needs: []Feature{Sweeps}, run: pastPeriodCountsHeldRowsAndRowsWithoutADate},

	// Sweeps that follow the data map below the rows they delete.
	{name: "sweep-deletes-the-children-of-expired-rows", needs: []Feature{Sweeps, References}, run: sweepDeletesTheChildrenOfExpiredRows},
	{name: "sweep-follows-a-three-level-chain-and-clears-links", needs: []Feature{Sweeps, References}, run: sweepFollowsAThreeLevelChainAndClearsLinks},
	{name: "sweep-keeps-a-parent-whose-child-the-map-retains", needs: []Feature{Sweeps, References}, run: sweepKeepsAParentWhoseChildTheMapRetains},
	{name: "sweep-keeps-a-parent-whose-child-is-held", needs: []Feature{Sweeps, References}, run: sweepKeepsAParentWhoseChildIsHeld},
	{name: "sweep-keeps-a-parent-whose-child-is-exempted", needs: []Feature{Sweeps, References, Exemptions}, run: sweepKeepsAParentWhoseChildIsExempted},
}

// RequestID is the RequestID of the suite's requests.
const RequestID = "0b8f2a4e-7c11-4d8e-9f0a-3f5b6c7d8e9f"

func erasure(subject map[string]string) stores.Request {
	return stores.Request{Kind: stores.KindErasure, Subject: subject, RequestID: RequestID}
}

func access(subject map[string]string) stores.Request {
	return stores.Request{Kind: stores.KindAccess, Subject: subject, RequestID: RequestID}
}

func rectification(subject, values map[string]string) stores.Request {
	return stores.Request{Kind: stores.KindRectification, Subject: subject, Rectification: values, RequestID: RequestID}
}

var ctx = context.Background()

// Canonical renders fixture data as exports and the suite compare it: IDs
// as int64 (or their uuid text), integers as int64, bytes in base64, times
// in RFC 3339 (UTC).
func (f Fixture) Canonical(v any) any {
	switch v := v.(type) {
	case ID:
		if f.UUIDKeys {
			return f.IDText(v)
		}
		return int64(v)
	case int:
		return int64(v)
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	}
	return v
}

// KeyText renders fixture key data as SQL engines write keys as text:
// IDs by IDText, integers in decimal, strings as they are. Binary keys have
// no common text; engines render them.
func (f Fixture) KeyText(v any) string {
	switch v := v.(type) {
	case ID:
		return f.IDText(v)
	case string:
		return v
	case int:
		return fmt.Sprint(v)
	}
	panic(fmt.Sprintf("storetest: no text for key %T", v))
}

// Text renders fixture data as redis and processors hold it: text.
func (f Fixture) Text(v any) string {
	switch v := v.(type) {
	case ID:
		return f.IDText(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}

// loginEvents lists the keys of the fixture's login events for which keep,
// given the row (id, user_id, ip, at, via_proxy), is true.
func (x *fx) loginEvents(keep func(row []any) bool) []any {
	var out []any
	for _, c := range x.f.Collections() {
		if c.Spec.Name != "login_events" {
			continue
		}
		for i, r := range c.Rows {
			if keep(r) {
				out = append(out, c.Key(i))
			}
		}
	}
	return out
}
