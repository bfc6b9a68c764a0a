// Package envelope is the EGS response envelope every /api/v1 answer is
// wrapped in: {statusCode, status, message, data} on success and the same
// plus error{errorKey, message, data} on failure.
//
// It also installs itself as huma's error model (Install), so that errors
// huma produces on its own — validation (422), malformed JSON (400), body
// too large (413), unsupported media type (415) — come out in the same
// envelope as errors handlers return. EGS clients parse one shape only.
package envelope

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
)

// Status strings of the envelope.
const (
	// StatusOK is the status of every successful response.
	StatusOK = "OK"
	// StatusError is the status of errors EGS reports without a key.
	StatusError = "Error"
	// MessageSuccess is the message of every successful response.
	MessageSuccess = "Success"
)

// Error keys: a stable, machine-readable name for each kind of error. Agents
// and scripts switch on these, not on messages.
const (
	KeyUnauthenticated   = "UNAUTHENTICATED"
	KeyApiKeyInvalid     = "UNHANDLED_REQUEST_ERROR" // EGS's key for a malformed API key record
	KeyForbidden         = "FORBIDDEN"
	KeyNotFound          = "NOT_FOUND"
	KeyAlreadyExists     = "ALREADY_EXISTS"
	KeyConflict          = "CONFLICT"
	KeyValidation        = "VALIDATION_ERROR"
	KeyBadRequest        = "BAD_REQUEST"
	KeyUpstreamRequest   = "UPSTREAM_REQUEST_ERROR" // EGS's key for a missing kube-config parameter
	KeyMethodNotAllowed  = "METHOD_NOT_ALLOWED"
	KeyPayloadTooLarge   = "PAYLOAD_TOO_LARGE"
	KeyUnsupportedMedia  = "UNSUPPORTED_MEDIA_TYPE"
	KeyNotAcceptable     = "NOT_ACCEPTABLE"
	KeyTimeout           = "REQUEST_TIMEOUT"
	KeyInternal          = "INTERNAL_ERROR"
	KeyUnavailable       = "SERVICE_UNAVAILABLE"
	KeyWorkspaceNotReady = "WORKSPACE_NOT_READY"
)

// Response is a successful answer: the EGS envelope around data.
type Response[T any] struct {
	StatusCode int    `json:"statusCode" example:"200" doc:"HTTP status code, repeated"`
	Status     string `json:"status" example:"OK" doc:"OK on success"`
	Message    string `json:"message" example:"Success" doc:"Success on success"`
	Data       T      `json:"data"`
}

// Output is a huma output type whose body is the envelope around T.
type Output[T any] struct {
	Body Response[T]
}

// OK wraps data in a 200 envelope, ready to return from a huma handler.
func OK[T any](data T) *Output[T] {
	return &Output[T]{Body: Response[T]{StatusCode: http.StatusOK, Status: StatusOK, Message: MessageSuccess, Data: data}}
}

// Empty is the `{}` EGS answers with when there is nothing to say.
type Empty struct{}

// ErrorBody is the error object of a failed answer.
type ErrorBody struct {
	ErrorKey string `json:"errorKey" example:"VALIDATION_ERROR" doc:"Stable machine-readable error kind"`
	Message  string `json:"message" example:"priority: expected number <= 300" doc:"What went wrong, naming the field and the reason"`
	// Data is, as in EGS, a JSON document in a string with the details
	// (the failing fields and reasons), or null.
	Data *string `json:"data" nullable:"true" doc:"EGS-style JSON details as a string, or null"`
}

// Null is a value that is always JSON null: the data of an error.
type Null struct{}

// MarshalJSON writes null.
func (Null) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// UnmarshalJSON accepts anything (a client may decode an error).
func (*Null) UnmarshalJSON([]byte) error { return nil }

// Schema says null, for the OpenAPI document.
func (Null) Schema(huma.Registry) *huma.Schema { return &huma.Schema{Type: "null"} }

// FieldError is one invalid field: where and why.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
	Value  any    `json:"value,omitempty"`
}

// Error is a failed answer. It implements huma.StatusError, so handlers
// return it as an error and huma writes it with its status.
type Error struct {
	StatusCode int       `json:"statusCode" example:"422"`
	Status     string    `json:"status" example:"Error"`
	Message    string    `json:"message" example:"Bad Request"`
	Data       Null      `json:"data" doc:"Always null on errors"`
	Err        ErrorBody `json:"error"`

	fields []FieldError
	noData bool
}

// Error returns the detailed message.
func (e *Error) Error() string { return e.Err.Message }

// GetStatus returns the HTTP status.
func (e *Error) GetStatus() int { return e.StatusCode }

// Fields returns the invalid fields, if any.
func (e *Error) Fields() []FieldError { return e.fields }

// Opt changes an Error as it is built.
type Opt func(*Error)

// WithTitle sets the top-level message (default: the status's title).
func WithTitle(title string) Opt { return func(e *Error) { e.Message = title } }

// WithStatus sets the top-level status string (default "Error").
func WithStatus(status string) Opt { return func(e *Error) { e.Status = status } }

// WithFields attaches invalid fields; they go into error.data.
func WithFields(f ...FieldError) Opt { return func(e *Error) { e.fields = append(e.fields, f...) } }

// WithoutData leaves error.data null, as EGS does for auth errors.
func WithoutData() Opt { return func(e *Error) { e.noData = true } }

// New builds an error answer with status code, key and detailed message.
func New(code int, key, msg string, opts ...Opt) *Error {
	e := &Error{
		StatusCode: code,
		Status:     StatusError,
		Message:    Title(code),
		Err:        ErrorBody{ErrorKey: key, Message: msg},
	}
	for _, o := range opts {
		o(e)
	}
	if !e.noData && msg != "" {
		d := egsDetail(e)
		e.Err.Data = &d
	}
	return e
}

// Errorf is New with a formatted message.
func Errorf(code int, key, format string, args ...any) *Error {
	return New(code, key, fmt.Sprintf(format, args...))
}

// Validation is a 422 naming each invalid field and why.
func Validation(fields ...FieldError) *Error {
	parts := make([]string, 0, len(fields))
	for _, f := range fields {
		parts = append(parts, f.Field+": "+f.Reason)
	}
	return New(http.StatusUnprocessableEntity, KeyValidation, strings.Join(parts, "; "), WithFields(fields...))
}

// NotFound is a 404 with key NOT_FOUND.
func NotFound(format string, args ...any) *Error {
	return Errorf(http.StatusNotFound, KeyNotFound, format, args...)
}

// Conflict is a 409 with key CONFLICT.
func Conflict(format string, args ...any) *Error {
	return Errorf(http.StatusConflict, KeyConflict, format, args...)
}

// Internal is a 500 whose message hides the cause: causes are logged, not
// sent, since they may name internals.
func Internal() *Error {
	return New(http.StatusInternalServerError, KeyInternal, "internal error; the server log has the details")
}

// Title is the top-level message for a status code, as EGS writes them.
func Title(code int) string {
	switch code {
	case http.StatusUnauthorized:
		return "Unauthenticated"
	case http.StatusUnprocessableEntity:
		return "Bad Request" // EGS titles its 422s "Bad Request"
	case http.StatusRequestEntityTooLarge:
		return "Payload Too Large"
	}
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Error"
}

// keyFor is the error key of an error huma raises by itself.
func keyFor(code int) string {
	switch code {
	case http.StatusBadRequest:
		return KeyBadRequest
	case http.StatusUnauthorized:
		return KeyUnauthenticated
	case http.StatusForbidden:
		return KeyForbidden
	case http.StatusNotFound:
		return KeyNotFound
	case http.StatusMethodNotAllowed:
		return KeyMethodNotAllowed
	case http.StatusNotAcceptable:
		return KeyNotAcceptable
	case http.StatusRequestTimeout:
		return KeyTimeout
	case http.StatusConflict:
		return KeyConflict
	case http.StatusRequestEntityTooLarge:
		return KeyPayloadTooLarge
	case http.StatusUnsupportedMediaType:
		return KeyUnsupportedMedia
	case http.StatusUnprocessableEntity:
		return KeyValidation
	case http.StatusServiceUnavailable:
		return KeyUnavailable
	}
	if code >= 500 {
		return KeyInternal
	}
	return KeyBadRequest
}

// egsDetail renders the EGS details document that travels, as a string, in
// error.data.
func egsDetail(e *Error) string {
	type detail struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
		Field   string `json:"field"`
	}
	details := make([]detail, 0, len(e.fields))
	for _, f := range e.fields {
		details = append(details, detail{Reason: "FieldValueInvalid", Message: f.Reason, Field: f.Field})
	}
	doc := map[string]any{"error": map[string]any{
		"Message": e.Message,
		"Status":  e.StatusCode,
		"DetailedError": map[string]any{
			"Errormessage": e.Err.Message,
			"Reason":       e.Err.ErrorKey,
			"Details":      details,
		},
		"StatusCode":             e.StatusCode,
		"ReferenceDocumentation": "NA",
	}}
	b, _ := json.Marshal(doc) // maps of strings and ints always marshal
	return string(b)
}

// FromHuma turns what huma reports (a status, a summary and the failing
// details) into an envelope error whose message names each field and
// reason, e.g. "priority: expected number <= 300 (got 500)".
func FromHuma(code int, msg string, errs ...error) *Error {
	var fields []FieldError
	for _, err := range errs {
		if err == nil {
			continue
		}
		var e *Error
		if ok := asEnvelope(err, &e); ok {
			return e
		}
		if d, ok := err.(huma.ErrorDetailer); ok {
			fields = append(fields, fieldOf(d.ErrorDetail()))
			continue
		}
		fields = append(fields, FieldError{Field: "body", Reason: err.Error()})
	}
	if len(fields) == 0 {
		return New(code, keyFor(code), msg)
	}
	parts := make([]string, 0, len(fields))
	for _, f := range fields {
		p := f.Field + ": " + f.Reason
		if f.Value != nil && code == http.StatusUnprocessableEntity {
			if s := short(f.Value); s != "" {
				p += " (got " + s + ")"
			}
		}
		parts = append(parts, p)
	}
	return New(code, keyFor(code), strings.Join(parts, "; "), WithFields(fields...))
}

func asEnvelope(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// fieldOf names the field a huma detail is about: "body.priority" becomes
// "priority", and "expected required property x to be present" at "body"
// becomes "x: is required".
func fieldOf(d *huma.ErrorDetail) FieldError {
	loc := d.Location
	reason := d.Message
	const req = "expected required property "
	if strings.HasPrefix(reason, req) {
		name := strings.TrimSuffix(strings.TrimPrefix(reason, req), " to be present")
		if loc == "" || loc == "body" {
			loc = name
		} else {
			loc = loc + "." + name
		}
		return FieldError{Field: strings.TrimPrefix(loc, "body."), Reason: "is required"}
	}
	if strings.HasPrefix(reason, "unexpected property") {
		reason = "is not a known field"
	}
	if pat, ok := strings.CutPrefix(reason, "expected string to match pattern "); ok {
		if desc, ok := patternHints.Load(pat); ok {
			reason = "must be " + desc.(string)
		}
	}
	field := strings.TrimPrefix(loc, "body.")
	if field == "" {
		field = "body"
	}
	f := FieldError{Field: field, Reason: reason}
	// The raw body is echoed back on JSON syntax errors; leave it out, it can
	// be large and says nothing the client does not have.
	if field != "body" {
		f.Value = d.Value
	}
	return f
}

func short(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 64 {
		return ""
	}
	return string(b)
}

// patternHints maps a schema pattern to words for it, for messages.
var patternHints sync.Map

// DescribePattern makes validation failures of pattern say "must be desc"
// instead of quoting the regular expression. (The OpenAPI keyword huma has
// for this, patternDescription, is not valid OpenAPI.)
func DescribePattern(pattern, desc string) { patternHints.Store(pattern, desc) }

var installOnce sync.Once

// Install makes huma build every error it raises as an envelope Error. It
// replaces huma's package-level constructors, so it affects every huma API
// in the process; it is idempotent.
func Install() {
	installOnce.Do(func() {
		huma.NewError = func(code int, msg string, errs ...error) huma.StatusError {
			return FromHuma(code, msg, errs...)
		}
		huma.NewErrorWithContext = func(_ huma.Context, code int, msg string, errs ...error) huma.StatusError {
			return FromHuma(code, msg, errs...)
		}
	})
}

// Write writes e as JSON to w with its status.
func Write(w http.ResponseWriter, e *Error) {
	WriteJSON(w, e.StatusCode, e)
}

// WriteJSON writes v as JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		_ = enc.Encode(Internal())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
