package mongodb

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// path is a mapped document path: owner.userId, or addresses[].line1 for
// the line1 of every element of the array addresses (at most one array).
type path struct {
	raw string
	// dotted is the path as MongoDB queries it (addresses.line1).
	dotted string
	// array is the dotted path of the array ("" without one); elem the path
	// inside each element ("" when the elements are the values).
	array, elem string
}

var segment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,62}(\[\])?$`)

// parsePath accepts segments of letters, digits, _ and - (never a $ or an
// empty segment), and one [] at most.
func parsePath(raw string) (path, error) {
	if raw == "" {
		return path{}, fmt.Errorf("the path is empty")
	}
	p := path{raw: raw}
	var plain []string
	for i, s := range strings.Split(raw, ".") {
		if !segment.MatchString(s) {
			return path{}, fmt.Errorf("segment %d of path %q is not a field name (letters, digits, _ and -, optionally ending in [])", i+1, raw)
		}
		name, isArray := strings.CutSuffix(s, "[]")
		plain = append(plain, name)
		if isArray {
			if p.array != "" {
				return path{}, fmt.Errorf("path %q goes through more than one array", raw)
			}
			p.array = strings.Join(plain, ".")
		}
	}
	p.dotted = strings.Join(plain, ".")
	if p.array != "" {
		p.elem = strings.TrimPrefix(strings.TrimPrefix(p.dotted, p.array), ".")
	}
	return p, nil
}

// lookup returns the value at a dotted path of a document (no arrays).
func lookup(doc any, dotted string) (any, bool) {
	if dotted == "" {
		return doc, true
	}
	cur := doc
	for _, s := range strings.Split(dotted, ".") {
		v, ok := field(cur, s)
		if !ok {
			return nil, false
		}
		cur = v
	}
	return cur, true
}

func field(doc any, name string) (any, bool) {
	switch d := doc.(type) {
	case bson.D:
		for _, e := range d {
			if e.Key == name {
				return e.Value, true
			}
		}
	case bson.M:
		v, ok := d[name]
		return v, ok
	case map[string]any:
		v, ok := d[name]
		return v, ok
	}
	return nil, false
}

// setIn returns a copy of doc (an array element) with dotted set to v, or
// removed when remove is true.
func setIn(doc any, dotted string, v any, remove bool) any {
	if dotted == "" {
		if remove {
			return nil
		}
		return v
	}
	name, rest, nested := strings.Cut(dotted, ".")
	switch d := doc.(type) {
	case bson.D:
		out := make(bson.D, 0, len(d))
		found := false
		for _, e := range d {
			if e.Key != name {
				out = append(out, e)
				continue
			}
			found = true
			if !nested && remove {
				continue
			}
			out = append(out, bson.E{Key: name, Value: setIn(e.Value, rest, v, remove)})
		}
		if !found && !remove {
			out = append(out, bson.E{Key: name, Value: setIn(bson.D{}, rest, v, false)})
		}
		return out
	case bson.M:
		out := bson.M{}
		for k, val := range d {
			out[k] = val
		}
		if !nested && remove {
			delete(out, name)
		} else if cur, ok := d[name]; ok || !remove {
			if !ok {
				cur = bson.D{}
			}
			out[name] = setIn(cur, rest, v, remove)
		}
		return out
	}
	return doc
}

// candidates are the values an identity matches: the string itself and,
// when it is the canonical decimal of an integer, that number (a userId
// stored as a number); an ObjectId when it is one in lower-case hex.
func candidates(v string) bson.A {
	out := bson.A{v}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && strconv.FormatInt(n, 10) == v {
		out = append(out, n)
	}
	if len(v) == 24 && strings.ToLower(v) == v {
		if id, err := primitive.ObjectIDFromHex(v); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// matchesAny reports whether a stored value equals one of candidates, as
// MongoDB's equality compares them (numbers across numeric types).
func matchesAny(stored any, cands bson.A) bool {
	for _, c := range cands {
		switch c := c.(type) {
		case string:
			if s, ok := stored.(string); ok && s == c {
				return true
			}
		case int64:
			if n, ok := asInt(stored); ok && n == c {
				return true
			}
		case primitive.ObjectID:
			if id, ok := stored.(primitive.ObjectID); ok && id == c {
				return true
			}
		}
	}
	return false
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	}
	return 0, false
}

// text renders a stored scalar as the masking strategies and keys see it:
// strings as they are, numbers in decimal, dates in RFC 3339 (UTC), binary
// and ObjectIds in hex. ok is false for documents, arrays and null.
func text(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int32, int64:
		n, _ := asInt(v)
		return strconv.FormatInt(n, 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	case primitive.DateTime:
		return v.Time().UTC().Format(time.RFC3339), true
	case primitive.Binary:
		return hex.EncodeToString(v.Data), true
	case primitive.ObjectID:
		return v.Hex(), true
	case primitive.Decimal128:
		return v.String(), true
	}
	return "", false
}

// plain renders a stored value as exports hold it (JSON-friendly): integers
// as int64, dates in RFC 3339, binary in base64, ObjectIds in hex,
// documents as maps and arrays as lists.
func plain(v any) any {
	switch v := v.(type) {
	case int32:
		return int64(v)
	case primitive.DateTime:
		return v.Time().UTC().Format(time.RFC3339)
	case primitive.Binary:
		return base64.StdEncoding.EncodeToString(v.Data)
	case primitive.ObjectID:
		return v.Hex()
	case primitive.Decimal128:
		return v.String()
	case primitive.Null, primitive.Undefined:
		return nil
	case bson.D:
		out := map[string]any{}
		for _, e := range v {
			out[e.Key] = plain(e.Value)
		}
		return out
	case bson.M:
		out := map[string]any{}
		for k, e := range v {
			out[k] = plain(e)
		}
		return out
	case bson.A:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = plain(e)
		}
		return out
	}
	return v
}

// display renders any value as text for snapshots in tests.
func display(v any) string {
	if s, ok := text(v); ok {
		if t, isTime := v.(primitive.DateTime); isTime && t.Time().UTC().Truncate(24*time.Hour).Equal(t.Time().UTC()) {
			return t.Time().UTC().Format("2006-01-02")
		}
		return s
	}
	b, _ := json.Marshal(plain(v))
	return string(b)
}
