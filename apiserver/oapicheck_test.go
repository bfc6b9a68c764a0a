package apiserver

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Every answer a test gets through testServer.do is also checked against
// the served OpenAPI document: its status must be documented for the
// operation, and its body must match the documented schema. So the
// document cannot drift from what the handlers send.

var oapi struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

func (ts *testServer) checkOpenAPI(method, path string, r result) {
	ts.t.Helper()
	oapi.once.Do(func() {
		res, err := http.Get(ts.http.URL + "/openapi.json")
		if err != nil {
			oapi.err = err
			return
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		oapi.doc, oapi.err = openapi3.NewLoader().LoadFromData(raw)
		if oapi.err == nil {
			oapi.doc.Servers = openapi3.Servers{{URL: "/"}}
			oapi.router, oapi.err = legacy.NewRouter(oapi.doc)
		}
	})
	if oapi.err != nil {
		ts.t.Fatalf("OpenAPI document: %v", oapi.err)
	}
	req, _ := http.NewRequest(method, path, nil)
	route, params, err := oapi.router.FindRoute(req)
	if err != nil {
		return // not an operation (404/405, /healthz, ...): nothing documented to hold it to
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.code,
		Header:                 r.header,
		Body:                   io.NopCloser(bytes.NewReader([]byte(r.raw))),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		ts.t.Errorf("%s %s answered %d, which the OpenAPI document does not describe: %v\nbody: %s", method, path, r.code, err, trunc(r.raw))
	}
}
