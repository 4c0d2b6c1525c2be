package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-dev/lethe/internal/stores"
)

// exportKeys dumps every key of a collection as {"key", "type", "value"}. A
// hash is limited to the mapped fields in scope when the collection maps
// fields; other types have no fields and are exported whole.
func exportKeys(ctx context.Context, c goredis.Cmdable, coll *collection, req stores.Request, keys []keyInfo, r *resolution) error {
	var fields []string
	for _, f := range coll.Fields {
		if req.Scope.Covers(f.Category) {
			fields = append(fields, f.Name)
		}
	}
	for _, k := range keys {
		if !slices.Contains(exportable, k.typ) {
			// Never drop a subject's data silently: an unknown type fails the export.
			return fmt.Errorf("%w: collection %q has a key of type %s, which cannot be exported", stores.ErrInvalid, coll.Name, k.typ)
		}
	}
	readers := make([]func() (any, error), len(keys))
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			readers[i] = queueRead(ctx, p, k, fields, len(coll.Fields) > 0)
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return classify("export", err)
	}
	rows := make([]map[string]any, 0, len(keys))
	for i, k := range keys {
		v, err := readers[i]()
		if errors.Is(err, goredis.Nil) {
			continue // deleted since it was found
		}
		if err != nil {
			return classify("export", err)
		}
		rows = append(rows, map[string]any{"key": k.name, "type": k.typ, "value": v})
	}
	if len(rows) > 0 {
		r.export[coll.Name] = rows
	}
	r.add(stores.CollectionResult{Collection: coll.Name, Action: stores.ActionExport, Rows: int64(len(rows))})
	return nil
}

// exportable are the key types Export can dump.
var exportable = []string{"string", "hash", "list", "set", "zset", "stream"}

// queueRead queues the read of one key by its type (one of exportable) and
// returns how to get the value once the pipeline ran.
func queueRead(ctx context.Context, p goredis.Pipeliner, k keyInfo, fields []string, mapsFields bool) func() (any, error) {
	switch k.typ {
	case "string":
		cmd := p.Get(ctx, k.name)
		return func() (any, error) { return cmd.Result() }
	case "hash":
		cmd := p.HGetAll(ctx, k.name)
		return func() (any, error) {
			all, err := cmd.Result()
			if err != nil || !mapsFields {
				return all, err
			}
			out := map[string]string{}
			for _, f := range fields {
				if v, ok := all[f]; ok {
					out[f] = v
				}
			}
			return out, nil
		}
	case "list":
		cmd := p.LRange(ctx, k.name, 0, -1)
		return func() (any, error) { return cmd.Result() }
	case "set":
		cmd := p.SMembers(ctx, k.name)
		return func() (any, error) {
			members, err := cmd.Result()
			slices.Sort(members) // sets are unordered; sorted exports are stable
			return members, err
		}
	case "zset":
		cmd := p.ZRangeWithScores(ctx, k.name, 0, -1)
		return func() (any, error) {
			zs, err := cmd.Result()
			out := make([]map[string]any, len(zs))
			for i, z := range zs {
				out[i] = map[string]any{"member": z.Member, "score": z.Score}
			}
			return out, err
		}
	case "stream":
		cmd := p.XRange(ctx, k.name, "-", "+")
		return func() (any, error) {
			msgs, err := cmd.Result()
			out := make([]map[string]any, len(msgs))
			for i, m := range msgs {
				out[i] = map[string]any{"id": m.ID, "values": m.Values}
			}
			return out, err
		}
	}
	panic("queueRead: type " + k.typ + " is not exportable") // exportKeys checks first
}
