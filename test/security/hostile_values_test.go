package security

import (
	"strings"
	"unicode/utf8"
)

// Messages admission gives for refused identity values.
const (
	msgBlank   = "identity values must not be empty or only whitespace"
	msgTooLong = "Too long"
)

// Outcomes of a hostile value that passes admission.
const (
	// executes: the request runs and must act on exactly the subject's own data.
	executes = ""
	// refusedByController: the controller refuses the subject (InvalidSubject,
	// Stalled) before any store is called.
	refusedByController = "InvalidSubject"
)

// hostileValue is one hostile identity value and what must happen to it.
type hostileValue struct {
	name  string
	value string
	// identityType is email (a text column) unless set (userId: a bigint column).
	identityType string
	// admission is "" when the API server accepts the value inline, else a
	// substring of its refusal. Values that are not valid UTF-8 cannot be
	// written inline (JSON); they arrive through identitiesFrom Secrets.
	admission string
	// controller is executes or refusedByController.
	controller string
	// pgStorable: PostgreSQL text can hold the value (no NUL, valid UTF-8), so
	// the fixture has a subject with it.
	pgStorable bool
}

func (h hostileValue) idType() string {
	if h.identityType == "" {
		return "email"
	}
	return h.identityType
}

// hostileValues: at least 50 identity values an attacker, a typo or a copy
// and paste could produce.
func hostileValues() []hostileValue {
	mb := strings.Repeat("x", 1<<20)
	vs := []hostileValue{
		{name: "empty", value: "", admission: msgBlank},
		{name: "space", value: " ", admission: msgBlank},
		{name: "tab", value: "\t", admission: msgBlank},
		{name: "newline", value: "\n", admission: msgBlank},
		{name: "CRLF", value: "\r\n", admission: msgBlank},
		{name: "mixed blanks", value: " \t\n\f\r ", admission: msgBlank},
		{name: "vertical tab only", value: "\v", controller: refusedByController},
		{name: "no-break space only", value: "\u00a0", controller: refusedByController},
		{name: "ideographic space only", value: "\u3000", controller: refusedByController},
		{name: "NUL only", value: "\x00", controller: refusedByController},
		{name: "NUL inside", value: "a_b@x.io\x00evil", controller: refusedByController},
		{name: "1 MB", value: mb, admission: msgTooLong},
		{name: "1025 characters", value: strings.Repeat("y", 1025), admission: msgTooLong},
		{name: "1024 characters", value: strings.Repeat("z", 1024)},
		{name: "1024 two-byte characters", value: strings.Repeat("é", 1024)},
		{name: "percent", value: "%"},
		{name: "underscore", value: "_"},
		{name: "double percent", value: "%%"},
		{name: "LIKE prefix", value: "a_b@x.%"},
		{name: "LIKE look-alike", value: "a_b@x.io"},
		{name: "star", value: "*"},
		{name: "question mark", value: "?"},
		{name: "open bracket", value: "["},
		{name: "close bracket", value: "]"},
		{name: "character class", value: "[a-z]*"},
		{name: "backslash", value: `\`},
		{name: "escaped star", value: `\*`},
		{name: "single quote", value: "'"},
		{name: "double quote", value: `"`},
		{name: "backtick", value: "`"},
		{name: "SQL tautology", value: "' OR 1=1 --"},
		{name: "SQL stacked statement", value: "'; DROP TABLE people; --"},
		{name: "SQL double-quote tautology", value: `" OR ""="`},
		{name: "SQL comment", value: "/* comment */"},
		{name: "placeholder-looking", value: "$1"},
		{name: "case variant", value: "A_B@x.io"},
		{name: "mixed case", value: "A_b@X.io"},
		{name: "trailing space", value: "a_b@x.io "},
		{name: "leading space", value: " a_b@x.io"},
		{name: "Cyrillic a look-alike", value: "\u0430_b@x.io"},
		{name: "Cyrillic admin", value: "\u0430dmin"},
		{name: "Latin admin", value: "admin"},
		{name: "Greek capital alpha", value: "\u0391_B@x.io"},
		{name: "right-to-left override", value: "\u202ea_b@x.io"},
		{name: "right-to-left mark", value: "a_b@x.io\u200f"},
		{name: "zero-width space", value: "a_b@x.io\u200b"},
		{name: "emoji", value: "😀@x.io"},
		{name: "ZWJ emoji sequence", value: "👨\u200d👩\u200d👧"},
		{name: "combining accent", value: "e\u0301@x.io"},
		{name: "precomposed accent", value: "é@x.io"},
		{name: "dot dot slash", value: "../admin"},
		{name: "dot dot", value: ".."},
		{name: "slash", value: "a/b"},
		{name: "query and fragment", value: "a?b=c#d"},
		{name: "query injection", value: "a&check=x"},
		{name: "encoded slash", value: "%2F"},
		{name: "template braces", value: "{email}"},
		{name: "header injection", value: "a\r\nX-Injected: 1"},
		{name: "JSON breakout", value: `","admin":true,"x":"`},
		{name: "JSON null", value: "null"},
		{name: "user id", value: "1", identityType: "userId"},
		{name: "user id with leading zero", value: "01", identityType: "userId"},
		{name: "user id with plus", value: "+1", identityType: "userId"},
		{name: "user id tautology", value: "1 OR 1=1", identityType: "userId"},
		{name: "user id overflow", value: "99999999999999999999", identityType: "userId"},
		{name: "user id in exponent form", value: "1e0", identityType: "userId"},
		{name: "invalid UTF-8", value: "\xff\xfe"},
	}
	for i := range vs {
		v := &vs[i]
		v.pgStorable = utf8.ValidString(v.value) && !strings.ContainsRune(v.value, 0) && v.idType() == "email"
	}
	return vs
}
