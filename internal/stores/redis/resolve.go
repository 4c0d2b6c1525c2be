package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// write is one queued command of the apply transaction.
type write func(ctx context.Context, p goredis.Pipeliner)

// resolution is a request resolved against the live keys: the results, the
// keys read (to WATCH), the writes Apply queues and, for access, the export.
type resolution struct {
	results []stores.CollectionResult
	heldBy  []string
	read    []string
	writes  []write
	export  stores.Export
}

func (r *resolution) result() stores.Result {
	slices.Sort(r.heldBy)
	return stores.Result{Collections: r.results, Held: len(r.heldBy) > 0, HeldBy: slices.Compact(r.heldBy)}
}

// keys returns the keys read, sorted and distinct.
func (r *resolution) keys() []string {
	k := slices.Clone(r.read)
	slices.Sort(k)
	return slices.Compact(k)
}

func (r *resolution) add(res stores.CollectionResult) { r.results = append(r.results, res) }

// keyInfo is a key found for a subject and its type.
type keyInfo struct {
	name string
	typ  string
}

// resolve finds each in-scope collection's keys for the subject and decides
// what happens to them. It only reads; c is the client or the WATCH transaction.
func (s *Store) resolve(ctx context.Context, c goredis.Cmdable, req stores.Request) (*resolution, error) {
	if len(s.problems) > 0 {
		return nil, fmt.Errorf("%w: the data map does not fit redis (%d problems, see the DataStore status)", stores.ErrInvalid, len(s.problems))
	}
	r := &resolution{export: stores.Export{}}
	order := slices.Clone(s.m.Collections)
	if req.Kind == stores.KindErasure {
		slices.Reverse(order) // children first, as every engine reports erasure
	}
	for _, dc := range order {
		if !req.Scope.InScope(dc) {
			continue
		}
		if err := s.resolveCollection(ctx, c, s.colls[dc.Name], req, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (s *Store) resolveCollection(ctx context.Context, c goredis.Cmdable, coll *collection, req stores.Request, r *resolution) error {
	action := actionFor(req.Kind, coll)
	ids, missing, err := identities(coll.pattern, req.Subject)
	if err != nil {
		return err
	}
	if missing != "" {
		r.add(stores.CollectionResult{Collection: coll.Name, Action: action, Reason: fmt.Sprintf("the subject has no %s identity", missing)})
		return nil
	}
	m := coll.pattern.render(ids)
	keys, err := findKeys(ctx, c, m)
	if err != nil {
		return err
	}
	for _, k := range keys {
		r.read = append(r.read, k.name)
	}
	switch req.Kind {
	case stores.KindErasure:
		return s.erase(ctx, c, coll, req, keys, r)
	case stores.KindRectification:
		return rectify(ctx, c, coll, req, m, keys, r)
	case stores.KindAccess:
		return exportKeys(ctx, c, coll, req, keys, r)
	}
	return fmt.Errorf("%w: unknown request kind %q", stores.ErrInvalid, req.Kind)
}

func actionFor(kind stores.Kind, coll *collection) stores.Action {
	switch kind {
	case stores.KindAccess:
		return stores.ActionExport
	case stores.KindRectification:
		return stores.ActionRectify
	}
	if coll.OnErasure == privacyv1.ErasureAnonymize {
		return stores.ActionAnonymize
	}
	return stores.ActionDelete
}

// identities picks the subject's values for the pattern's placeholders;
// missing names the first absent type. An empty identity is refused: it
// would turn user:{email} into user: and session:{userId}:* into session::*.
func identities(p keyPattern, subject map[string]string) (map[string]string, string, error) {
	ids := map[string]string{}
	for _, t := range p.identityTypes() {
		v, ok := subject[t]
		if !ok {
			return nil, t, nil
		}
		if strings.TrimSpace(v) == "" {
			return nil, "", fmt.Errorf("%w: the subject's %s identity is empty", stores.ErrInvalid, t)
		}
		ids[t] = v
	}
	return ids, "", nil
}

// findKeys returns the keys matching m, sorted, with their types. An exact
// pattern is one TYPE call; otherwise SCAN MATCH walks the keyspace, and every
// key returned is matched again in Go.
func findKeys(ctx context.Context, c goredis.Cmdable, m match) ([]keyInfo, error) {
	var names []string
	if m.exact() {
		names = []string{m.key()}
	} else {
		var err error
		if names, err = scan(ctx, c, m); err != nil {
			return nil, err
		}
	}
	cmds := make([]*goredis.StatusCmd, len(names))
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.Type(ctx, n)
		}
		return nil
	})
	if err != nil {
		return nil, classify("TYPE", err)
	}
	var keys []keyInfo
	for i, n := range names {
		if t := cmds[i].Val(); t != "none" { // gone since SCAN
			keys = append(keys, keyInfo{name: n, typ: t})
		}
	}
	return keys, nil
}

func scan(ctx context.Context, c goredis.Cmdable, m match) ([]string, error) {
	glob := m.glob()
	seen := map[string]bool{}
	var cursor uint64
	for {
		batch, next, err := c.Scan(ctx, cursor, glob, scanCount).Result()
		if err != nil {
			return nil, classify("SCAN", err)
		}
		for _, k := range batch {
			if m.matches(k) { // SCAN may also return a key twice
				seen[k] = true
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	slices.Sort(names)
	return names, nil
}

// erase decides, per key, retain (hold, onErasure retain, exemption) or act
// (delete or anonymize), and queues the writes.
func (s *Store) erase(ctx context.Context, c goredis.Cmdable, coll *collection, req stores.Request, keys []keyInfo, r *resolution) error {
	if coll.OnErasure == privacyv1.ErasureRetain {
		r.add(stores.CollectionResult{Collection: coll.Name, Action: stores.ActionRetain, Rows: int64(len(keys)), Reason: coll.RetainReason})
		return nil
	}
	keys, allHeld, err := s.holdKeys(ctx, c, coll, req, keys, r)
	if err != nil || allHeld {
		return err
	}
	action, _, err := stores.ErasureAction(coll.Collection, req.Scope)
	if err != nil {
		return err
	}
	act, kept, err := applyExemptions(ctx, c, coll.Name, req.Exemptions, keys)
	if err != nil {
		return err
	}
	res := stores.CollectionResult{Collection: coll.Name, Action: action, Rows: int64(len(act))}
	if res.Action == stores.ActionAnonymize {
		// Keys whose fields already hold their masked values are not written
		// again, nor counted: applying twice changes and reports nothing.
		res.Rows, err = s.anonymize(ctx, c, coll, req, act, r)
	} else {
		queueUnlink(act, r)
	}
	if err != nil {
		return err
	}
	r.add(res)
	if kept != nil {
		r.add(*kept)
	}
	return nil
}

// holdKeys reports the subject's keys of coll that legal holds keep, and
// returns the others (allHeld: none are left). A hold on everyone's keys keeps them all; a hold on a
// subject keeps the keys its own identities find with the collection's
// pattern or, when they cannot fill it, all of them if the hold may be the
// same person (stores.Hold.HoldsByIdentity).
func (s *Store) holdKeys(ctx context.Context, c goredis.Cmdable, coll *collection, req stores.Request, keys []keyInfo, r *resolution) (rest []keyInfo, allHeld bool, err error) {
	found := len(keys)
	for _, h := range req.Holds {
		if !h.Covers(coll.Name) || len(keys) == 0 {
			continue
		}
		held := keys
		if h.Subject != nil {
			ids, missing, err := identities(coll.pattern, h.Subject)
			switch {
			case err != nil:
				return nil, false, fmt.Errorf("legal hold %s: %w", h.Name, err)
			case missing != "" && !h.HoldsByIdentity(req.Subject):
				held = nil
			case missing == "":
				theirs, err := findKeys(ctx, c, coll.pattern.render(ids))
				if err != nil {
					return nil, false, err
				}
				held = slices.DeleteFunc(slices.Clone(keys), func(k keyInfo) bool { return !slices.Contains(theirs, k) })
			}
		}
		if len(held) == 0 {
			continue
		}
		keys = slices.DeleteFunc(keys, func(k keyInfo) bool { return slices.Contains(held, k) })
		r.heldBy = append(r.heldBy, h.Name)
		r.add(stores.CollectionResult{Collection: coll.Name, Action: stores.ActionRetain, Rows: int64(len(held)),
			Reason: fmt.Sprintf("legal hold %s: %s", h.Name, h.Reason)})
	}
	return keys, found > 0 && len(keys) == 0, nil
}

func queueUnlink(keys []keyInfo, r *resolution) {
	for chunk := range slices.Chunk(keys, unlinkBatch) {
		names := make([]string, len(chunk))
		for i, k := range chunk {
			names[i] = k.name
		}
		r.writes = append(r.writes, func(ctx context.Context, p goredis.Pipeliner) { p.Unlink(ctx, names...) })
	}
}

// applyExemptions keeps the hash keys whose exemption field holds a time after
// the cutoff (RFC 3339, YYYY-MM-DD or unix seconds). Keys without such a time
// cannot be shown to be inside the legal period and are erased.
func applyExemptions(ctx context.Context, c goredis.Cmdable, collName string, exemptions []stores.Exemption, keys []keyInfo) (act []keyInfo, kept *stores.CollectionResult, err error) {
	var mine []stores.Exemption
	for _, e := range exemptions {
		if e.Collection == collName && e.Field != "" {
			mine = append(mine, e)
		}
	}
	if len(mine) == 0 {
		return keys, nil, nil
	}
	res := &stores.CollectionResult{Collection: collName, Action: stores.ActionRetain}
	for _, k := range keys {
		e, until, err := exemptUntil(ctx, c, k, mine)
		if err != nil {
			return nil, nil, err
		}
		if e == nil {
			act = append(act, k)
			continue
		}
		res.Rows++
		res.Reason = fmt.Sprintf("exempt from erasure for %s under %s (rule %s)", e.Period, e.LegalBasis, e.Rule)
		if res.RetainedUntil == nil || until.After(*res.RetainedUntil) {
			res.RetainedUntil = &until
		}
		if res.RetainedFrom == nil || until.Before(*res.RetainedFrom) {
			res.RetainedFrom = &until
		}
	}
	if res.Rows == 0 {
		return act, nil, nil
	}
	if !res.RetainedFrom.Before(*res.RetainedUntil) {
		res.RetainedFrom = nil // one date for all
	}
	return act, res, nil
}

// exemptUntil returns the exemption keeping k, if any, and when it ends.
func exemptUntil(ctx context.Context, c goredis.Cmdable, k keyInfo, exemptions []stores.Exemption) (*stores.Exemption, time.Time, error) {
	if k.typ != "hash" {
		return nil, time.Time{}, nil
	}
	for i, e := range exemptions {
		v, err := c.HGet(ctx, k.name, e.Field).Result()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return nil, time.Time{}, classify("HGET", err)
		}
		t, ok := parseTime(v)
		if !ok || !t.After(e.Cutoff) {
			continue
		}
		until, err := privacyv1.Period(e.Period).After(t)
		if err != nil {
			until = t
		}
		return &exemptions[i], until, nil
	}
	return nil, time.Time{}, nil
}

func parseTime(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC(), true
	}
	return time.Time{}, false
}

// anonymize masks the mapped fields in scope of every key, which must be a
// hash. nullify removes the field (redis has no NULL); a field already equal
// to its masked value is left alone, so re-applying deterministic strategies
// changes nothing.
func (s *Store) anonymize(ctx context.Context, c goredis.Cmdable, coll *collection, req stores.Request, keys []keyInfo, r *resolution) (changed int64, err error) {
	var fields []string
	for _, f := range coll.Fields {
		if f.Masking != nil && req.Scope.Covers(f.Category) {
			fields = append(fields, f.Name)
		}
	}
	current, err := readHashFields(ctx, c, coll, keys, fields)
	if err != nil {
		return 0, err
	}
	for i, k := range keys {
		var set []any
		var del []string
		for j, name := range fields {
			v, present := current[i][j].(string)
			if !present {
				continue
			}
			f, _ := coll.Field(name)
			if f.Masking.Strategy == privacyv1.MaskNullify {
				del = append(del, name)
				continue
			}
			masked, err := masking.MaskString(f.Masking, s.maskingKey, k.name, v)
			if err != nil {
				// MaskString's errors name the strategy, never the value.
				return 0, fmt.Errorf("%w: collection %q field %q: %w", stores.ErrInvalid, coll.Name, name, err)
			}
			if masked != v {
				set = append(set, name, masked)
			}
		}
		if len(set) > 0 || len(del) > 0 {
			changed++
		}
		queueHashWrites(k.name, set, del, r)
	}
	return changed, nil
}

// rectify sets the mapped fields in scope whose category has a corrected
// value. A corrected identity that the key pattern names is in the key names
// too (contacts:{email}:*): those keys are renamed, or the old value would
// still find them. It counts the keys it changes, so applying it again
// reports 0.
func rectify(ctx context.Context, c goredis.Cmdable, coll *collection, req stores.Request, m match, keys []keyInfo, r *resolution) error {
	res := stores.CollectionResult{Collection: coll.Name, Action: stores.ActionRectify}
	var fields, newValues []string
	for _, f := range coll.Fields {
		if v, ok := req.Rectification[f.Category]; ok && req.Scope.Covers(f.Category) {
			fields, newValues = append(fields, f.Name), append(newValues, v)
		}
	}
	renamed := renamedIdentities(coll, fields, newValues)
	if len(fields) == 0 {
		res.Reason = "no corrected value for the fields this collection maps"
		r.add(res)
		return nil
	}
	current, err := readHashFields(ctx, c, coll, keys, fields)
	if err != nil {
		return err
	}
	targets, err := renameTargets(ctx, c, coll, m, keys, renamed, r)
	if err != nil {
		return err
	}
	for i, k := range keys {
		var set []any
		for j, name := range fields {
			if v, ok := current[i][j].(string); !ok || v != newValues[j] {
				set = append(set, name, newValues[j])
			}
		}
		queueHashWrites(k.name, set, nil, r)
		if to := targets[i]; to != k.name {
			r.writes = append(r.writes, func(ctx context.Context, p goredis.Pipeliner) { p.Rename(ctx, k.name, to) })
		} else if len(set) == 0 {
			continue
		}
		res.Rows++
	}
	r.add(res)
	return nil
}

// renamedIdentities are the identity types of coll's key pattern whose field
// the rectification corrects, with their new values.
func renamedIdentities(coll *collection, fields, newValues []string) map[string]string {
	out := map[string]string{}
	for _, t := range coll.pattern.identityTypes() {
		if i := slices.Index(fields, coll.Identity[t]); i >= 0 {
			out[t] = newValues[i]
		}
	}
	return out
}

// renameTargets names, per key, the key it becomes once its identities are
// corrected (itself when none is in its name). A target that already exists
// belongs to someone else, or to a half-done earlier attempt: it is refused,
// never overwritten. The targets are read, so the transaction watches them.
func renameTargets(ctx context.Context, c goredis.Cmdable, coll *collection, m match, keys []keyInfo, renamed map[string]string, r *resolution) ([]string, error) {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.name
	}
	if len(renamed) == 0 {
		return out, nil
	}
	var check []string
	for i, k := range keys {
		parts, ok := m.capture(k.name)
		if !ok {
			return nil, fmt.Errorf("%w: a key of collection %q no longer matches its pattern", stores.ErrUnavailable, coll.Name)
		}
		for j, t := range coll.pattern.tokens {
			if v, ok := renamed[t.text]; ok && t.kind == tokPlaceholder {
				parts[j] = v
			}
		}
		if out[i] = strings.Join(parts, ""); out[i] != k.name {
			check = append(check, out[i])
		}
	}
	if len(check) == 0 {
		return out, nil
	}
	r.read = append(r.read, check...)
	n, err := c.Exists(ctx, check...).Result()
	if err != nil {
		return nil, classify("EXISTS", err)
	}
	if n > 0 {
		return nil, fmt.Errorf("%w: collection %q: %d key(s) the corrected identity would rename to exist already; Lethe does not overwrite them", stores.ErrInvalid, coll.Name, n)
	}
	return out, nil
}

func queueHashWrites(key string, set []any, del []string, r *resolution) {
	if len(set) > 0 {
		r.writes = append(r.writes, func(ctx context.Context, p goredis.Pipeliner) { p.HSet(ctx, key, set...) })
	}
	if len(del) > 0 {
		r.writes = append(r.writes, func(ctx context.Context, p goredis.Pipeliner) { p.HDel(ctx, key, del...) })
	}
}

// readHashFields reads fields of every key (HMGET, pipelined): [key][field]
// is a string, or nil when the field is absent. Every key must be a hash.
func readHashFields(ctx context.Context, c goredis.Cmdable, coll *collection, keys []keyInfo, fields []string) ([][]any, error) {
	for _, k := range keys {
		if k.typ != "hash" {
			return nil, fmt.Errorf("%w: collection %q has a key of type %s; anonymization and rectification need hashes", stores.ErrInvalid, coll.Name, k.typ)
		}
	}
	out := make([][]any, len(keys))
	if len(fields) == 0 {
		return out, nil
	}
	cmds := make([]*goredis.SliceCmd, len(keys))
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HMGet(ctx, k.name, fields...)
		}
		return nil
	})
	if err != nil {
		return nil, classify("HMGET", err)
	}
	for i := range keys {
		out[i] = cmds[i].Val()
	}
	return out, nil
}
