package v1alpha1

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

var periodPattern = regexp.MustCompile(`^([1-9][0-9]{0,5})(h|d|w|mo|y)$`)

// Validate reports whether p is a well-formed period.
func (p Period) Validate() error {
	if !periodPattern.MatchString(string(p)) {
		return fmt.Errorf("period %q must be a positive number followed by h, d, w, mo or y (e.g. 30d, 10y)", string(p))
	}
	return nil
}

// After returns t plus the period, using calendar arithmetic for d, w, mo and y.
func (p Period) After(t time.Time) (time.Time, error) { return p.shift(t, 1) }

// Before returns t minus the period: the cutoff before which rows are past it.
func (p Period) Before(t time.Time) (time.Time, error) { return p.shift(t, -1) }

func (p Period) shift(t time.Time, sign int) (time.Time, error) {
	m := periodPattern.FindStringSubmatch(string(p))
	if m == nil {
		return time.Time{}, p.Validate()
	}
	n, _ := strconv.Atoi(m[1])
	n *= sign
	switch m[2] {
	case "h":
		return t.Add(time.Duration(n) * time.Hour), nil
	case "d":
		return t.AddDate(0, 0, n), nil
	case "w":
		return t.AddDate(0, 0, 7*n), nil
	case "mo":
		return t.AddDate(0, n, 0), nil
	default:
		return t.AddDate(n, 0, 0), nil
	}
}
