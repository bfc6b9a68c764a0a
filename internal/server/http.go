package server

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// httpTimeouts bound every connection of the API's listener, so a slow or
// stalled client holds a connection (and its goroutine) for a bounded time.
type httpTimeouts struct {
	// readHeader bounds reading a request's headers; read bounds reading
	// the whole request, body included.
	readHeader, read time.Duration
	// write bounds the time from the end of reading the headers to the end
	// of writing the answer.
	write time.Duration
	// idle bounds how long a keep-alive connection waits for the next
	// request.
	idle time.Duration
}

// defaultTimeouts are generous for the API (its handlers answer from
// caches, and the slowest waits two seconds for its own write to show in
// the cache) and tight enough that a stalled client cannot hold a
// connection for long.
var defaultTimeouts = httpTimeouts{
	readHeader: 10 * time.Second,
	read:       30 * time.Second,
	write:      60 * time.Second,
	idle:       120 * time.Second,
}

// maxHeaderBytes bounds a request's headers (a bearer token is under 1 KiB).
const maxHeaderBytes = 64 << 10

// streamingPaths are the endpoints whose answers may stream for longer
// than the write timeout: MCP's streamable HTTP, and the server-sent event
// stream. They bound themselves (they end with the client or the server).
var streamingPaths = []string{"/mcp", "/api/v1/events"}

// newHTTPServer is the API's HTTP server: h behind the timeouts above,
// lifted for the streaming endpoints.
func newHTTPServer(h http.Handler, t httpTimeouts, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           liftDeadlines(h, streamingPaths),
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
}

// liftDeadlines clears the connection's write deadline for requests to
// paths (or below them), so that a stream is not cut by the server's
// timeouts; every other request keeps it. The read deadline goes too, but
// only once the request body is read (reading it stays bounded): from then
// on the server watches the connection for the client going away, and a
// read timeout there would cancel the stream's context.
func liftDeadlines(h http.Handler, paths []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if underAny(r.URL.Path, paths) {
			rc := http.NewResponseController(w)
			// An error means the writer cannot set deadlines (a recorder
			// in tests), and then none was set either.
			_ = rc.SetWriteDeadline(time.Time{})
			if r.Body == nil || r.Body == http.NoBody {
				_ = rc.SetReadDeadline(time.Time{})
			} else {
				r.Body = &liftAtEOF{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// liftAtEOF calls lift once the body has been read to its end.
type liftAtEOF struct {
	io.ReadCloser
	lift func()
	done bool
}

func (b *liftAtEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		b.lift()
	}
	return n, err
}

func underAny(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}
