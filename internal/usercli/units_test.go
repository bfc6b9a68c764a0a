package usercli

import (
	"strings"
	"testing"
	"time"
)

func TestEGSDuration(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"2h", "0d2h0m", false},
		{"90m", "0d1h30m", false},
		{"49h", "2d1h0m", false},
		{"0d2h30m", "0d2h30m", false},
		{"0", "0d0h0m", false}, // a zero is sent as zero: the API decides
		{"90s", "", true},
		{"-1h", "", true},
		{"2 hours", "", true},
	} {
		got, err := egsDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("egsDuration(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), "--duration") {
			t.Errorf("egsDuration(%q): error %q names no flag", tc.in, err)
		}
	}
}

func TestWhen(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"":                     "-",
		"2026-01-01T12:00:00Z": "now",
		"2026-01-01T12:00:40Z": "in 40s",
		"2026-01-01T14:05:00Z": "in 2h5m",
		"2026-01-01T14:00:00Z": "in 2h",
		"2026-01-01T11:57:00Z": "3m ago",
	} {
		if got := when(in, now); got != want {
			t.Errorf("when(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadSSE(t *testing.T) {
	in := ": keep-alive\n\nid: 1\nevent: ready\ndata: {\"lastEventId\":\"1\"}\n\nid: 2\nevent: gpr\ndata: {\"a\":\ndata: 1}\n\n"
	var got []sseEvent
	if err := readSSE(strings.NewReader(in), func(ev sseEvent) { got = append(got, ev) }); err == nil {
		t.Fatal("readSSE returned nil at the end of the stream, want io.EOF")
	}
	if len(got) != 2 || got[0].name != "ready" || got[1].id != "2" || string(got[1].data) != "{\"a\":\n1}" {
		t.Errorf("events %+v", got)
	}
}

func TestAPIErrorNamesTheFlag(t *testing.T) {
	err := apiError(422, []byte(`{"statusCode":422,"status":"Error","message":"Unprocessable Entity","error":{"errorKey":"VALIDATION_ERROR","message":"body.numberOfGPUs: expected number >= 1","data":null}}`), fieldFlags)
	want := "body.numberOfGPUs: expected number >= 1 (VALIDATION_ERROR, HTTP 422); fix it with --gpus"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if err := apiError(502, []byte("bad gateway"), nil); err.Error() != "bad gateway (HTTP_502, HTTP 502)" {
		t.Errorf("non-envelope answer: %q", err)
	}
}
