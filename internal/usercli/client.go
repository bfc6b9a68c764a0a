package usercli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/gpuspace/gpuspace/apiserver/client"
)

// session is one command's connection to a gpuspace server: the generated
// client with a bearer token from the context's API key.
type session struct {
	server string
	apiKey string
	token  string
	http   *http.Client
	api    *client.ClientWithResponses
}

// connect resolves the server and key (flags and $GPUSPACE_SERVER /
// $GPUSPACE_API_KEY over the context) and exchanges the key for a token.
func (o *globals) connect(ctx context.Context) (*session, error) {
	server, key := o.server, os.Getenv("GPUSPACE_API_KEY")
	if server == "" {
		server = os.Getenv("GPUSPACE_SERVER")
	}
	if server == "" || key == "" {
		cfg, _, err := loadConfig()
		if err != nil {
			return nil, err
		}
		c, err := cfg.context(o.context)
		if err != nil && server == "" {
			return nil, err
		}
		if c != nil {
			if server == "" {
				server = c.Server
			}
			if key == "" {
				key = c.APIKey
			}
		}
	}
	if tok := os.Getenv("GPUSPACE_TOKEN"); tok != "" && server != "" {
		// An ID token of the server's OpenID Provider (docs/sso.md), sent
		// as it is.
		return newSession(server, "", tok)
	}
	if key == "" {
		return nil, fmt.Errorf("not logged in to %s: run gpuspace login", server)
	}
	s := &session{server: strings.TrimRight(server, "/"), apiKey: key, http: defaultHTTP()}
	if err := s.login(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// newSession is a session that sends token as its bearer, no login.
func newSession(server, key, token string) (*session, error) {
	s := &session{server: strings.TrimRight(server, "/"), apiKey: key, token: token, http: defaultHTTP()}
	return s, s.bearer()
}

// login exchanges the API key for a bearer token (POST /api/v1/auth) and
// builds the client that sends it.
func (s *session) login(ctx context.Context) error {
	anon, err := client.NewClientWithResponses(s.server, client.WithHTTPClient(s.http))
	if err != nil {
		return fmt.Errorf("server %q: %w", s.server, err)
	}
	r, err := anon.AuthenticateWithResponse(ctx, client.AuthRequest{ApiKey: s.apiKey})
	if err != nil {
		return fmt.Errorf("reach %s: %w", s.server, err)
	}
	if r.JSON200 == nil {
		return fmt.Errorf("log in to %s: %w", s.server, apiError(r.StatusCode(), r.Body, nil))
	}
	s.token = r.JSON200.Data.Token
	return s.bearer()
}

// bearer builds the client that sends the session's token.
func (s *session) bearer() error {
	var err error
	s.api, err = client.NewClientWithResponses(s.server, client.WithHTTPClient(s.http),
		client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+s.token)
			return nil
		}))
	return err
}

// defaultHTTP is the HTTP client of a command: no overall timeout (the
// event stream is long-lived; commands bound themselves by context).
func defaultHTTP() *http.Client { return &http.Client{Transport: http.DefaultTransport} }

// APIError is an error answer of the API, from its envelope.
type APIError struct {
	Status  int
	Key     string // errorKey
	Message string // names the field and the reason
	Flag    string // the flag that sets the field, when known
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	s := fmt.Sprintf("%s (%s, HTTP %d)", msg, e.Key, e.Status)
	if e.Flag != "" {
		s += "; fix it with " + e.Flag
	}
	return s
}

// apiError turns a non-2xx answer into an *APIError. flags maps the API's
// field names to the CLI flags that set them, so the error names the fix.
func apiError(status int, body []byte, flags map[string]string) error {
	var env client.Error
	e := &APIError{Status: status}
	if json.Unmarshal(body, &env) == nil {
		e.Key, e.Message = env.Error.ErrorKey, env.Error.Message
		if e.Message == "" {
			e.Message = env.Message
		}
	}
	if e.Key == "" {
		e.Key = "HTTP_" + fmt.Sprint(status)
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(body))
		}
	}
	if field, _, ok := strings.Cut(e.Message, ":"); ok {
		field = strings.TrimPrefix(strings.TrimSpace(field), "body.")
		e.Flag = flags[field]
	}
	return e
}

// check returns err, or the API error of a generated response r (a
// pointer to one of client's *Response structs) that is not a 2xx.
func check(r any, err error, flags map[string]string) error {
	if err != nil {
		return err
	}
	v := reflect.ValueOf(r).Elem()
	resp, _ := v.FieldByName("HTTPResponse").Interface().(*http.Response)
	if resp == nil {
		return errors.New("no answer")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiError(resp.StatusCode, v.FieldByName("Body").Bytes(), flags)
	}
	return nil
}

// parseTime reads an RFC 3339 time of the API; zero when empty.
func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

// asAPIError is errors.As for *APIError.
func asAPIError(err error) (*APIError, bool) {
	var e *APIError
	return e, errors.As(err, &e)
}
