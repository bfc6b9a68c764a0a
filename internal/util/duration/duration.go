// Package duration converts between the duration forms the EGS API uses:
// requests carry NdNhNm ("0d2h30m"), responses carry Go-style durations with
// hours, minutes and seconds always present ("2h30m0s", "0h2m40s").
package duration

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Errors Parse wraps, so callers can tell a malformed duration from one that
// is well formed but unusable.
var (
	// ErrEmpty is returned for an empty string.
	ErrEmpty = errors.New("duration is empty")
	// ErrFormat is returned for a string that is not NdNhNm.
	ErrFormat = errors.New("duration must be NdNhNm, e.g. 0d2h30m")
	// ErrZero is returned for a duration of zero minutes.
	ErrZero = errors.New("duration must be longer than zero")
	// ErrOverflow is returned for a duration too long to represent.
	ErrOverflow = errors.New("duration is too long")
)

// Parse parses an EGS duration "NdNhNm": days, hours and minutes, each a
// non-negative decimal number and all three present, in that order
// ("0d0h5m", "1d0h0m", "0d36h0m"). Hours and minutes may exceed 23 and 59.
// Zero ("0d0h0m") is an error: a GPR that lasts no time is a mistake.
func Parse(s string) (time.Duration, error) {
	if s == "" {
		return 0, ErrEmpty
	}
	rest := s
	var total time.Duration
	for _, unit := range []struct {
		suffix byte
		size   time.Duration
	}{{'d', 24 * time.Hour}, {'h', time.Hour}, {'m', time.Minute}} {
		i := strings.IndexByte(rest, unit.suffix)
		if i <= 0 || !allDigits(rest[:i]) {
			return 0, fmt.Errorf("%q: %w", s, ErrFormat)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > math.MaxInt64/int64(unit.size) {
			return 0, fmt.Errorf("%q: %w", s, ErrOverflow)
		}
		part := time.Duration(n) * unit.size
		if total > math.MaxInt64-part {
			return 0, fmt.Errorf("%q: %w", s, ErrOverflow)
		}
		total += part
		rest = rest[i+1:]
	}
	if rest != "" {
		return 0, fmt.Errorf("%q: %w", s, ErrFormat)
	}
	if total == 0 {
		return 0, fmt.Errorf("%q: %w", s, ErrZero)
	}
	return total, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Format writes d as EGS writes durations in responses: hours (which may
// exceed 24), minutes and seconds, always all three, e.g. 90 minutes is
// "1h30m0s" and zero is "0h0m0s". Fractions of a second are dropped; a
// negative d gets a leading "-". time.ParseDuration reads the result back.
func Format(d time.Duration) string {
	// Whole seconds first: their magnitude always fits, even for
	// math.MinInt64 nanoseconds.
	secs := int64(d / time.Second)
	neg := secs < 0
	if neg {
		secs = -secs
	}
	out := strconv.FormatInt(secs/3600, 10) + "h" +
		strconv.FormatInt(secs/60%60, 10) + "m" +
		strconv.FormatInt(secs%60, 10) + "s"
	if neg {
		return "-" + out
	}
	return out
}

// FormatEGS writes d in the request form NdNhNm, with hours below 24 and
// minutes below 60 ("1d2h30m"). Seconds are dropped; a negative d is
// written as "0d0h0m". Parse reads the result back for any d of at least
// a minute.
func FormatEGS(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	mins := int64(d / time.Minute)
	return strconv.FormatInt(mins/(24*60), 10) + "d" +
		strconv.FormatInt(mins/60%24, 10) + "h" +
		strconv.FormatInt(mins%60, 10) + "m"
}

// ParseLenient parses s as NdNhNm or, as the EGS SDK's template examples
// write durations ("1h", "10m"), as a Go duration of whole minutes
// ("2h30m", "1h0m0s" as responses write it). The result is what Parse
// would return for the same duration written as NdNhNm.
func ParseLenient(s string) (time.Duration, error) {
	d, err := Parse(s)
	if err == nil || !errors.Is(err, ErrFormat) || strings.ContainsAny(s, "d.") {
		return d, err
	}
	d, goErr := time.ParseDuration(s)
	switch {
	case goErr != nil || d < 0 || d%time.Minute != 0:
		return 0, err
	case d == 0:
		return 0, fmt.Errorf("%q: %w", s, ErrZero)
	}
	return d, nil
}

// Normalize returns s, an NdNhNm or Go duration ParseLenient accepts, as
// NdNhNm: s itself when it is NdNhNm already.
func Normalize(s string) (string, error) {
	if _, err := Parse(s); err == nil {
		return s, nil
	}
	d, err := ParseLenient(s)
	if err != nil {
		return "", err
	}
	return FormatEGS(d), nil
}

// ToGo writes an NdNhNm duration as responses carry it, in Go form
// ("0d0h5m" -> "0h5m0s"). "" stays "", and a string Parse refuses is
// returned as it is: a stored value is shown, never hidden.
func ToGo(s string) string {
	if s == "" {
		return ""
	}
	d, err := Parse(s)
	if err != nil {
		return s
	}
	return Format(d)
}
