package envelope

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/go-cmp/cmp"
)

func TestFromHuma(t *testing.T) {
	DescribePattern("^[a-z]+$", "lower-case letters")
	tests := []struct {
		name     string
		code     int
		errs     []error
		wantKey  string
		wantMsg  string
		wantData bool
	}{
		{"required", 422, []error{&huma.ErrorDetail{Location: "body", Message: "expected required property exitDuration to be present"}},
			KeyValidation, "exitDuration: is required", true},
		{"range with value", 422, []error{&huma.ErrorDetail{Location: "body.priority", Message: "expected number <= 300", Value: 500}},
			KeyValidation, "priority: expected number <= 300 (got 500)", true},
		{"pattern worded", 422, []error{&huma.ErrorDetail{Location: "body.name", Message: "expected string to match pattern ^[a-z]+$", Value: "X"}},
			KeyValidation, `name: must be lower-case letters (got "X")`, true},
		{"two fields", 422, []error{
			&huma.ErrorDetail{Location: "body.a", Message: "bad"}, &huma.ErrorDetail{Location: "query.b", Message: "worse"}},
			KeyValidation, "a: bad; query.b: worse", true},
		{"plain", 413, nil, KeyPayloadTooLarge, "request body is too large", true},
		{"plain error", 400, []error{errors.New("unexpected EOF")}, KeyBadRequest, "body: unexpected EOF", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := "request body is too large"
			e := FromHuma(tt.code, msg, tt.errs...)
			if e.StatusCode != tt.code || e.Err.ErrorKey != tt.wantKey || e.Err.Message != tt.wantMsg {
				t.Errorf("got %d %s %q, want %d %s %q", e.StatusCode, e.Err.ErrorKey, e.Err.Message, tt.code, tt.wantKey, tt.wantMsg)
			}
			if (e.Err.Data != nil) != tt.wantData {
				t.Errorf("error.data %v", e.Err.Data)
			}
		})
	}
}

func TestEnvelopeJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, New(http.StatusUnauthorized, KeyUnauthenticated, "Api Key has expired",
		WithStatus(KeyUnauthenticated), WithTitle("Api Key has expired"), WithoutData()))
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	// Exactly the spec's "ApiKey Expired" answer (plus data: null).
	want := map[string]any{
		"statusCode": 401.0, "status": "UNAUTHENTICATED", "message": "Api Key has expired", "data": nil,
		"error": map[string]any{"errorKey": "UNAUTHENTICATED", "message": "Api Key has expired", "data": nil},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	ok, _ := json.Marshal(OK(map[string]string{"gprId": "gpr-1"}).Body)
	if string(ok) != `{"statusCode":200,"status":"OK","message":"Success","data":{"gprId":"gpr-1"}}` {
		t.Errorf("success envelope: %s", ok)
	}
}
