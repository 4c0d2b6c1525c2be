package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Identities and rectified values come as TYPE=VALUE pairs, from repeated
// flags or from a file of lines. Every error here names the flag, the line
// number or the type, never the value: the value is personal data.

// identityType is what the API accepts as an identity type (Identities in
// api/v1alpha1): camelCase, such as email or userId.
var identityType = regexp.MustCompile(`^[a-z][A-Za-z0-9]{0,62}$`)

// categoryName is a dotted data category, such as user.contact.email.
var categoryName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// maxPairsBytes bounds a file of pairs: a Secret holds at most 1 MiB.
const maxPairsBytes = 1 << 20

// pairKind describes one kind of pairs, for parsing and messages.
type pairKind struct {
	what   string         // "identity", "value"
	key    string         // "type", "category"
	flag   string         // "--identity"
	keyRE  *regexp.Regexp // what a key must look like
	keyFmt string         // "a camelCase name such as email or userId"
}

var (
	identityPairs = pairKind{what: "identity", key: "type", flag: "--identity", keyRE: identityType,
		keyFmt: "a camelCase name such as email or userId"}
	valuePairs = pairKind{what: "rectified value", key: "category", flag: "--set", keyRE: categoryName,
		keyFmt: "a category such as user.contact.email"}
)

// pairs collects TYPE=VALUE pairs of one kind, in order, refusing duplicates.
type pairs struct {
	kind pairKind
	// seen is told every value, valid or not, before it is checked.
	seen   func(value string)
	keys   []string
	values map[string]string
}

func newPairs(kind pairKind, seen func(string)) *pairs {
	return &pairs{kind: kind, seen: seen, values: map[string]string{}}
}

// add checks one pair; where says where it came from ("--identity #2",
// "line 3 of the identity file").
func (p *pairs) add(where, raw string) error {
	k, v, ok := strings.Cut(raw, "=")
	if !ok {
		return fmt.Errorf("%s: expected %s=VALUE", where, strings.ToUpper(p.kind.key))
	}
	if p.seen != nil {
		p.seen(v)
	}
	if !p.kind.keyRE.MatchString(k) {
		// Not echoed: a pair written the wrong way round (VALUE=TYPE) has
		// the value on this side.
		return fmt.Errorf("%s: the %s (before =) is not %s", where, p.kind.key, p.kind.keyFmt)
	}
	if _, dup := p.values[k]; dup {
		return fmt.Errorf("%s: %s %s %q is given twice", where, p.kind.what, p.kind.key, k)
	}
	if err := checkValue(v); err != nil {
		return fmt.Errorf("%s: the %s of %s %q %v", where, p.kind.what, p.kind.key, k, err)
	}
	p.keys = append(p.keys, k)
	p.values[k] = v
	return nil
}

// checkValue refuses what would match nobody, or someone else: Lethe matches
// identities exactly, so " jane@example.com" is another person.
func checkValue(v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		return errors.New("is empty")
	case !utf8.ValidString(v):
		return errors.New("is not valid UTF-8")
	case strings.ContainsAny(v, "\x00\r\n"):
		return errors.New("contains a NUL character or a line break")
	case strings.TrimSpace(v) != v:
		return errors.New("has leading or trailing whitespace (Lethe matches values exactly)")
	}
	return nil
}

// readFile adds the pairs of a file ("-": r, standard input): one TYPE=VALUE
// per line; blank lines and lines starting with # are skipped.
func (p *pairs) readFile(name string, stdin io.Reader) error {
	label := strconv.Quote(name)
	var r io.Reader
	if name == "-" {
		r = stdin
		label = "standard input"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("opening %s: %w", label, err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxPairsBytes+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", label, err)
	}
	if len(data) > maxPairsBytes {
		return fmt.Errorf("%s is larger than 1 MiB", label)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxPairsBytes)
	n := 0
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(strings.TrimSpace(text), "#") {
			continue
		}
		if err := p.add(fmt.Sprintf("line %d of %s", line, label), text); err != nil {
			return err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", label, err)
	}
	if n == 0 {
		return fmt.Errorf("%s has no %s=VALUE line", label, strings.ToUpper(p.kind.key))
	}
	return nil
}

// addFlags adds the pairs given with repeated flags.
func (p *pairs) addFlags(raw []string) error {
	for i, r := range raw {
		if err := p.add(fmt.Sprintf("%s #%d", p.kind.flag, i+1), r); err != nil {
			return err
		}
	}
	return nil
}

// data is the pairs as Secret data.
func (p *pairs) data() map[string][]byte {
	out := make(map[string][]byte, len(p.values))
	for k, v := range p.values {
		out[k] = []byte(v)
	}
	return out
}
