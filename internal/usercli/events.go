package usercli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gpuspace/gpuspace/apiserver/client"
)

// sseEvent is one event of GET /api/v1/events.
type sseEvent struct {
	id, name string
	data     []byte
}

// gprEvent is the data of an event gpr (apiserver.GPREvent).
type gprEvent struct {
	Change  string          `json:"change"`
	GPRID   string          `json:"gprId"`
	Reason  string          `json:"reason"`
	Message string          `json:"message"`
	Plan    *client.PlanGPR `json:"plan"`
}

// events follows the event stream until ctx ends, sending its events on
// the returned channel, which closes with the error that ended it. The
// stream ends when the bearer token expires: it logs in again and resumes
// after the last event it saw (the server answers reset when it no longer
// has what was missed).
func (s *session) events(ctx context.Context) (<-chan sseEvent, <-chan error) {
	out, errc := make(chan sseEvent, 64), make(chan error, 1)
	go func() {
		defer close(out)
		last := ""
		for {
			err := s.streamOnce(ctx, last, func(ev sseEvent) {
				if ev.id != "" {
					last = ev.id
				}
				select {
				case out <- ev:
				case <-ctx.Done():
				}
			})
			if ctx.Err() != nil {
				errc <- ctx.Err()
				return
			}
			if e, ok := asAPIError(err); ok && (e.Status != http.StatusUnauthorized || s.apiKey == "") {
				errc <- err
				return
			}
			// The stream ended (token expiry, a restarted server): a new
			// token, then resume; a second in between so a server that is
			// down is not hammered.
			select {
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			case <-time.After(time.Second):
			}
			if s.apiKey == "" {
				continue // an ID token: reconnect with it; a 401 then ends the stream
			}
			if err := s.login(ctx); err != nil {
				if _, ok := asAPIError(err); ok {
					errc <- err
					return
				}
			}
		}
	}()
	return out, errc
}

// streamOnce reads one connection of the stream.
func (s *session) streamOnce(ctx context.Context, last string, fn func(sseEvent)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.server+"/api/v1/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "text/event-stream")
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return apiError(resp.StatusCode, b, nil)
	}
	return readSSE(resp.Body, fn)
}

// readSSE parses text/event-stream: fields id, event, data; a blank line
// ends an event; comment lines (":") are heartbeats.
func readSSE(r io.Reader, fn func(sseEvent)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(data) > 0 || ev.name != "" {
				ev.data = []byte(strings.Join(data, "\n"))
				if ev.name == "" {
					ev.name = "message"
				}
				fn(ev)
			}
			ev, data = sseEvent{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.name = value
		case "data":
			data = append(data, value)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

// errNotProvisioned is the error of a wait that ended without the GPR
// being Provisioned.
var errNotProvisioned = errors.New("not provisioned")

// waitFor follows the GPR id until it is Provisioned (nil), or fails,
// ends or is deleted first (an error wrapping errNotProvisioned). On a
// terminal it keeps one live line; otherwise it prints a line per change.
func waitFor(ctx context.Context, w io.Writer, s *session, id string, now func() time.Time) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, errc := s.events(ctx)
	line := newLiveLine(w)
	defer line.end()
	var gpr *client.GPR
	var pos map[string]int
	refresh := func() error {
		var err error
		if gpr, err = getGPR(ctx, s, id); err != nil {
			return err
		}
		pos, err = positions(ctx, s)
		return err
	}
	for {
		select {
		case ev, open := <-evs:
			if !open {
				return <-errc
			}
			switch ev.name {
			case "ready", "reset":
				if err := refresh(); err != nil {
					return err
				}
			case "gpr":
				var e gprEvent
				if json.Unmarshal(ev.data, &e) != nil {
					continue
				}
				if e.GPRID == id && e.Change == "deleted" {
					line.show(fmt.Sprintf("%s was deleted", id))
					return fmt.Errorf("%s was deleted: %w", id, errNotProvisioned)
				}
				// Any GPR's change can move this one's place: read again.
				if err := refresh(); err != nil {
					return err
				}
			default:
				continue
			}
			line.show(waitLine(gpr, pos[id], now()))
			switch gpr.Status.ProvisioningStatus {
			case client.GPRStatusProvisioningStatusProvisioned:
				return nil
			case client.GPRStatusProvisioningStatusError, client.GPRStatusProvisioningStatusComplete:
				return fmt.Errorf("%s is %s (%s): %w", id, gpr.Status.ProvisioningStatus, dash(gpr.Status.FailureReason), errNotProvisioned)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitLine is the line that shows the GPR's state.
func waitLine(gpr *client.GPR, position int, now time.Time) string {
	st := gpr.Status
	switch st.ProvisioningStatus {
	case client.GPRStatusProvisioningStatusProvisioned:
		return fmt.Sprintf("%s Provisioned on %s", gpr.GprId, join(st.Nodes))
	case client.GPRStatusProvisioningStatusQueued:
		p := "-"
		if position > 0 {
			p = fmt.Sprint(position)
		}
		s := fmt.Sprintf("%s Queued: position %s, likely start %s, latest start %s", gpr.GprId, p,
			when(gpr.EstimatedStartTime, now), when(gpr.LatestStartTime, now))
		if st.FailureReason != "" {
			s += " (" + st.FailureReason + ")"
		}
		return s
	default:
		return fmt.Sprintf("%s %s (%s)", gpr.GprId, st.ProvisioningStatus, dash(st.FailureReason))
	}
}

// liveLine is one status line: rewritten in place on a terminal, a new
// line per change otherwise.
type liveLine struct {
	w    io.Writer
	tty  bool
	last string
}

func newLiveLine(w io.Writer) *liveLine { return &liveLine{w: w, tty: isTerminal(w)} }

func (l *liveLine) show(s string) {
	if s == "" || s == l.last {
		return
	}
	l.last = s
	if l.tty {
		printf(l.w, "\r\x1b[K%s", s)
		return
	}
	printf(l.w, "%s\n", s)
}

func (l *liveLine) end() {
	if l.tty && l.last != "" {
		printf(l.w, "\n")
	}
}

// watchEvents calls show now and again after each change on the event
// stream (changes within half a second are shown once), until ctx ends.
func watchEvents(ctx context.Context, w io.Writer, s *session, show func() error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, errc := s.events(ctx)
	tty := isTerminal(w)
	var due <-chan time.Time
	for {
		select {
		case ev, open := <-evs:
			if !open {
				if err := <-errc; !errors.Is(err, context.Canceled) {
					return err
				}
				return nil
			}
			if ev.name != "message" && due == nil {
				due = time.After(500 * time.Millisecond)
			}
		case <-due:
			due = nil
			if tty {
				printf(w, "\x1b[H\x1b[2J")
			} else {
				printf(w, "\n")
			}
			if err := show(); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}
