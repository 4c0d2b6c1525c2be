package masking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

var testKey = []byte("test masking key")

func ptr[T any](v T) *T { return &v }

func mask(s privacyv1.MaskingStrategy) *privacyv1.Masking { return &privacyv1.Masking{Strategy: s} }

func partial(n int32) *privacyv1.Masking {
	return &privacyv1.Masking{Strategy: privacyv1.MaskPartial, KeepLast: ptr(n)}
}

func textCol() ColumnInfo {
	return ColumnInfo{Name: "c", Type: "text", Kind: KindText, Nullable: true}
}

func TestCheck(t *testing.T) {
	notNull := textCol()
	notNull.Nullable = false
	unique := textCol()
	unique.Unique = true
	short := textCol()
	short.Type, short.MaxLength = "character varying(40)", 40
	date := ColumnInfo{Name: "born", Type: "date", Kind: KindDate, Nullable: true}
	integer := ColumnInfo{Name: "n", Type: "integer", Kind: KindInteger, Nullable: true}
	uniqueInt := integer
	uniqueInt.Unique = true
	uuid := ColumnInfo{Name: "u", Type: "uuid", Kind: KindUUID, Unique: true}
	json := ColumnInfo{Name: "j", Type: "jsonb", Kind: KindOther, Nullable: true}

	tests := []struct {
		name string
		m    *privacyv1.Masking
		col  ColumnInfo
		want string // substring of the error; empty: compatible
	}{
		{"no masking", nil, notNull, ""},
		{"nullify nullable", mask(privacyv1.MaskNullify), textCol(), ""},
		{"nullify NOT NULL", mask(privacyv1.MaskNullify), notNull, "the column is NOT NULL"},
		{"nullify any type", mask(privacyv1.MaskNullify), json, ""},
		{"redact text", mask(privacyv1.MaskRedact), notNull, ""},
		{"redact UNIQUE", mask(privacyv1.MaskRedact), unique, "unique constraint refuses; use uniqueEmail or hash"},
		{"redact date", mask(privacyv1.MaskRedact), date, "the column holds date values"},
		{"redact too long", &privacyv1.Masking{Strategy: privacyv1.MaskRedact, Value: ptr(strings.Repeat("x", 41))}, short, "writes 41 characters but the column holds at most 40"},
		{"hash UNIQUE text", mask(privacyv1.MaskHash), unique, ""},
		{"hash integer", mask(privacyv1.MaskHash), integer, "the column holds integer values"},
		{"hash too short", mask(privacyv1.MaskHash), short, "writes 64 characters but the column holds at most 40"},
		{"partial text", partial(4), notNull, ""},
		{"partial UNIQUE", partial(4), unique, "values of the same length and ending"},
		{"partial without keepLast", mask(privacyv1.MaskPartial), textCol(), "keepLast is required"},
		{"partial date", partial(2), date, "the column holds date values"},
		{"randomize date", mask(privacyv1.MaskRandomize), date, ""},
		{"randomize UNIQUE uuid", mask(privacyv1.MaskRandomize), uuid, ""},
		{"randomize UNIQUE integer", mask(privacyv1.MaskRandomize), uniqueInt, "random values of this type can repeat"},
		{"randomize UNIQUE text", mask(privacyv1.MaskRandomize), unique, ""},
		{"randomize jsonb", mask(privacyv1.MaskRandomize), json, "no random value for type jsonb"},
		{"generalize date", mask(privacyv1.MaskGeneralize), date, ""},
		{"generalize integer", mask(privacyv1.MaskGeneralize), integer, ""},
		{"generalize text", mask(privacyv1.MaskGeneralize), textCol(), "use partial or redact for text"},
		{"generalize UNIQUE", mask(privacyv1.MaskGeneralize), uniqueInt, "repeat by design"},
		{"generalize bad granularity", &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Granularity: "week"}, date, `granularity "week"`},
		{"uniqueEmail UNIQUE NOT NULL", mask(privacyv1.MaskUniqueEmail), unique, ""},
		{"uniqueEmail integer", mask(privacyv1.MaskUniqueEmail), integer, "writes an email-shaped value"},
		{"uniqueEmail too short", mask(privacyv1.MaskUniqueEmail), ColumnInfo{Name: "e", Type: "varchar(50)", Kind: KindText, MaxLength: 50}, "writes 54 characters"},
		{"unknown strategy", mask("scramble"), textCol(), "unknown strategy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.m, tt.col)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Check() = %v, want compatible", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Check() = nil, want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Check() = %q, want it to contain %q", err, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), `column "`+tt.col.Name+`"`):
				t.Fatalf("Check() = %q does not name the column", err)
			}
		})
	}
}

func TestHMACPadsComputeHMAC(t *testing.T) {
	for _, key := range [][]byte{testKey, []byte(strings.Repeat("k", 64)), []byte(strings.Repeat("long key ", 20))} {
		inner, outer := hmacPads(key)
		innerSum := sha256.Sum256(append(append([]byte{}, inner...), "ünïcödé"...))
		got := sha256.Sum256(append(append([]byte{}, outer...), innerSum[:]...))
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte("ünïcödé"))
		if want := mac.Sum(nil); !hmac.Equal(got[:], want) {
			t.Errorf("key of %d bytes: pads give %x, HMAC is %x", len(key), got, want)
		}
	}
}

func TestMaskString(t *testing.T) {
	hashOf := func(v string) string {
		mac := hmac.New(sha256.New, testKey)
		mac.Write([]byte(v))
		return hex.EncodeToString(mac.Sum(nil))
	}
	tests := []struct {
		name  string
		m     *privacyv1.Masking
		value string
		want  string
	}{
		{"nullify", mask(privacyv1.MaskNullify), "x", ""},
		{"redact default", mask(privacyv1.MaskRedact), "x", "[redacted]"},
		{"redact value", &privacyv1.Masking{Strategy: privacyv1.MaskRedact, Value: ptr("gone")}, "x", "gone"},
		{"hash", mask(privacyv1.MaskHash), "a_b@x.io", hashOf("a_b@x.io")},
		{"partial counts characters", partial(2), "ünïcödé", "*****dé"},
		{"partial shorter than keepLast", partial(4), "abc", "abc"},
		{"partial keep none", partial(0), "abc", "***"},
		{"generalize date to month", mask(privacyv1.MaskGeneralize), "1990-05-17", "1990-05-01"},
		{"generalize date to year", &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Granularity: "year"}, "1990-05-17", "1990-01-01"},
		{"generalize timestamp in UTC", mask(privacyv1.MaskGeneralize), "2024-03-01T01:30:00+02:00", "2024-02-01T00:00:00Z"},
		{"generalize integer", mask(privacyv1.MaskGeneralize), "37", "30"},
		{"generalize negative integer", mask(privacyv1.MaskGeneralize), "-3", "-10"},
		{"generalize step", &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Step: ptr(int64(1000))}, "123456", "123000"},
		{"generalize decimal", mask(privacyv1.MaskGeneralize), "42.75", "40"},
		{"uniqueEmail digests the primary key", mask(privacyv1.MaskUniqueEmail), "a_b@x.io", "erased-" + hashOf("pk-1")[:32] + "@erased.invalid"},
		{"uniqueEmail domain", &privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail, Domain: "example.org"}, "x", "erased-" + hashOf("pk-1")[:32] + "@example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MaskString(tt.m, testKey, "pk-1", tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("MaskString() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMaskStringRandomizes(t *testing.T) {
	a, err := MaskString(mask(privacyv1.MaskRandomize), nil, "1", "x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := MaskString(mask(privacyv1.MaskRandomize), nil, "1", "x")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(a) || a == b {
		t.Fatalf("randomize gave %q then %q, want two different 32-digit hex strings", a, b)
	}
}

func TestMaskStringRefuses(t *testing.T) {
	tests := []struct {
		name string
		m    *privacyv1.Masking
		key  []byte
		want string
	}{
		{"hash without key", mask(privacyv1.MaskHash), nil, "needs the DataStore's maskingKeySecretRef"},
		{"uniqueEmail without key", mask(privacyv1.MaskUniqueEmail), []byte{}, "needs the DataStore's maskingKeySecretRef"},
		{"generalize text", mask(privacyv1.MaskGeneralize), testKey, "needs a date"},
		{"partial without keepLast", mask(privacyv1.MaskPartial), testKey, "keepLast"},
		{"unknown", mask("scramble"), testKey, "unknown masking strategy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MaskString(tt.m, tt.key, "1", "Ada Lovelace")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("MaskString() error = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "Ada") {
				t.Fatalf("error %q repeats the value", err)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	for _, s := range []privacyv1.MaskingStrategy{privacyv1.MaskNullify, privacyv1.MaskRedact, privacyv1.MaskHash, privacyv1.MaskPartial, privacyv1.MaskGeneralize, privacyv1.MaskUniqueEmail} {
		if !Deterministic(mask(s)) {
			t.Errorf("Deterministic(%s) = false", s)
		}
	}
	if Deterministic(mask(privacyv1.MaskRandomize)) {
		t.Error("Deterministic(randomize) = true")
	}
}
