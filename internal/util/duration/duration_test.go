package duration

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr error
	}{
		{in: "0d0h5m", want: 5 * time.Minute},
		{in: "0d2h30m", want: 2*time.Hour + 30*time.Minute},
		{in: "1d0h0m", want: 24 * time.Hour},
		{in: "0d36h0m", want: 36 * time.Hour},
		{in: "0d0h90m", want: 90 * time.Minute},
		{in: "00d01h001m", want: time.Hour + time.Minute},
		{in: "", wantErr: ErrEmpty},
		{in: "0d0h0m", wantErr: ErrZero},
		{in: "5m", wantErr: ErrFormat},
		{in: "0h5m0s", wantErr: ErrFormat},
		{in: "0d5m", wantErr: ErrFormat},
		{in: "d0h5m", wantErr: ErrFormat},
		{in: "0d0h5m ", wantErr: ErrFormat},
		{in: " 0d0h5m", wantErr: ErrFormat},
		{in: "0d0h5mx", wantErr: ErrFormat},
		{in: "-1d0h5m", wantErr: ErrFormat},
		{in: "+1d0h5m", wantErr: ErrFormat},
		{in: "0D0H5M", wantErr: ErrFormat},
		{in: "0h0d5m", wantErr: ErrFormat},
		{in: "1.5d0h0m", wantErr: ErrFormat},
		{in: "106752d0h0m", wantErr: ErrOverflow},
		{in: "0d2562048h0m", wantErr: ErrOverflow},
		{in: "106751d23h47m", want: 106751*24*time.Hour + 23*time.Hour + 47*time.Minute},
		{in: "106751d23h48m", wantErr: ErrOverflow},
		{in: "99999999999999999999d0h0m", wantErr: ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0h0m0s"},
		{5 * time.Minute, "0h5m0s"},
		{90 * time.Minute, "1h30m0s"},
		{2*time.Minute + 40*time.Second, "0h2m40s"},
		{49 * time.Hour, "49h0m0s"},
		{time.Second + 999*time.Millisecond, "0h0m1s"},
		{-5 * time.Minute, "-0h5m0s"},
		{math.MaxInt64, "2562047h47m16s"},
		{math.MinInt64, "-2562047h47m16s"},
	}
	for _, tt := range tests {
		if got := Format(tt.in); got != tt.want {
			t.Errorf("Format(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatEGS(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0d0h0m"},
		{5 * time.Minute, "0d0h5m"},
		{90 * time.Minute, "0d1h30m"},
		{50*time.Hour + 59*time.Second, "2d2h0m"},
		{-time.Hour, "0d0h0m"},
	}
	for _, tt := range tests {
		if got := FormatEGS(tt.in); got != tt.want {
			t.Errorf("FormatEGS(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParse checks that Parse never panics, and that whatever it accepts
// survives both output forms: FormatEGS parses back to the same duration
// and Format is a valid Go duration of the same length.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0d0h5m", "1d2h3m", "0d0h0m", "", "106751d23h47m", "9d99h999m", "xd1h1m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			if d != 0 {
				t.Fatalf("Parse(%q) = %v with error %v, want 0", s, d, err)
			}
			return
		}
		if d <= 0 || d%time.Minute != 0 {
			t.Fatalf("Parse(%q) = %v: want a positive whole number of minutes", s, d)
		}
		egs := FormatEGS(d)
		back, err := Parse(egs)
		if err != nil || back != d {
			t.Fatalf("Parse(FormatEGS(%v)) = %v, %v; FormatEGS gave %q", d, back, err, egs)
		}
		goForm := Format(d)
		std, err := time.ParseDuration(goForm)
		if err != nil || std != d {
			t.Fatalf("time.ParseDuration(Format(%v)) = %v, %v; Format gave %q", d, std, err, goForm)
		}
	})
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"0d1h0m": "0d1h0m", "0d36h0m": "0d36h0m", "1h": "0d1h0m", "10m": "0d0h10m", "2h30m": "0d2h30m",
		"1h0m0s": "0d1h0m", "36h": "1d12h0m",
	} {
		if got, err := Normalize(in); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0m", "0d0h0m", "90s", "1.5h", "-1h", "1d", "x"} {
		if got, err := Normalize(in); err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", in, got)
		}
	}
}

func TestToGo(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "0d0h5m": "0h5m0s", "1d2h30m": "26h30m0s", "0d36h0m": "36h0m0s", "x": "x", "0d0h0m": "0d0h0m",
	} {
		if got := ToGo(in); got != want {
			t.Errorf("ToGo(%q) = %q, want %q", in, got, want)
		}
	}
}
