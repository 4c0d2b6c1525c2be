package v1alpha1

import (
	"testing"
	"time"
)

func TestPeriodArithmetic(t *testing.T) {
	base := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		p    Period
		want time.Time
	}{
		{"12h", time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)},
		{"30d", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		{"2w", time.Date(2026, 3, 17, 12, 0, 0, 0, time.UTC)},
		{"1y", time.Date(2025, 3, 31, 12, 0, 0, 0, time.UTC)},
		{"10y", time.Date(2016, 3, 31, 12, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		got, err := c.p.Before(base)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%s before %s = %s, %v; want %s", c.p, base, got, err, c.want)
		}
		back, _ := c.p.After(got)
		if c.p != "1mo" && !back.Equal(base) && c.p[len(c.p)-1] != 'o' {
			t.Errorf("%s after %s = %s; want %s", c.p, got, back, base)
		}
	}
	for _, bad := range []Period{"", "0d", "30 days", "1.5y", "d", "-1d", "1000000d"} {
		if err := bad.Validate(); err == nil {
			t.Errorf("period %q accepted", bad)
		}
	}
}
